package jsonscan

import (
	"encoding/json"
	"testing"
)

func TestSkipAgreesWithEncodingJSON(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0.5e+10`, `"a\"b\\c\u00e9"`, `{"a":[1,2,{"b":null}],"c":"d"}`,
		`{"a":1,}`, `[1,]`, `{"a" 1}`, `01`, `1.`, `-`, `"unterminated`, "\"ctl\x01\"", `tru`, `{"a":1}x`, `[`, ``, `{"a":nul}`, `1e`, `.5`,
	} {
		s := New([]byte(doc))
		err := s.Skip()
		if err == nil {
			err = s.End()
		}
		if valid := json.Valid([]byte(doc)); valid != (err == nil) {
			t.Errorf("%q: json.Valid = %v, Skip error = %v", doc, valid, err)
		}
	}
}

func TestStringsAreUnescapedAsEncodingJSONDoes(t *testing.T) {
	for _, doc := range []string{`"plain"`, `"tab\tquote\"slash\/uni\u2028"`, `"\ud83d\ude00"`, "\"bad utf8 \xff\"", `""`} {
		var want string
		_ = json.Unmarshal([]byte(doc), &want)
		got, err := New([]byte(doc)).String()
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", doc, got, err, want)
		}
	}
}

func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x",true,false,null,{}]}`, `[`, `"\u00`, `-01`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		s := New(doc)
		err := s.Skip()
		if err == nil {
			err = s.End()
		}
		if valid := json.Valid(doc); valid != (err == nil) {
			t.Fatalf("%q: json.Valid = %v, Skip error = %v", doc, valid, err)
		}
	})
}
