package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSkipAgreesWithEncodingJSON(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0.5e+10`, `"a\"b\\c\u00e9"`, `{"a":[1,2,{"b":null}],"c":"d"}`,
		`{"a":1,}`, `[1,]`, `{"a" 1}`, `01`, `1.`, `-`, `"unterminated`, "\"ctl\x01\"", `tru`, `{"a":1}x`, `[`, ``, `{"a":nul}`, `1e`, `.5`,
	} {
		t.Run(fmt.Sprintf("%q", doc), func(t *testing.T) {
			s := New([]byte(doc))
			err := s.Skip()
			if err == nil {
				err = s.End()
			}
			if valid := json.Valid([]byte(doc)); valid != (err == nil) {
				t.Errorf("json.Valid = %v, Skip error = %v", valid, err)
			}
		})
	}
}

func TestStringsAreUnescapedAsEncodingJSONDoes(t *testing.T) {
	for _, doc := range []string{`"plain"`, `"tab\tquote\"slash\/uni\u2028"`, `"\ud83d\ude00"`, "\"bad utf8 \xff\"", `""`} {
		t.Run(fmt.Sprintf("%q", doc), func(t *testing.T) {
			var want string
			_ = json.Unmarshal([]byte(doc), &want)
			got, err := New([]byte(doc)).String()
			if err != nil || got != want {
				t.Errorf("got %q, %v; want %q", got, err, want)
			}
		})
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

func TestNestingIsBoundedAsEncodingJSONBoundsIt(t *testing.T) {
	nest := func(open, closer string, n int) string {
		return strings.Repeat(open, n) + "0" + strings.Repeat(closer, n)
	}
	tests := []struct {
		name string
		doc  string
	}{
		{name: "arrays at the limit", doc: nest("[", "]", MaxDepth)},
		{name: "arrays one past the limit", doc: nest("[", "]", MaxDepth+1)},
		{name: "objects at the limit", doc: nest(`{"a":`, "}", MaxDepth)},
		{name: "objects one past the limit", doc: nest(`{"a":`, "}", MaxDepth+1)},
		{name: "four million open arrays", doc: strings.Repeat("[", 4<<20)},
		{name: "empty arrays at the deepest level", doc: strings.Repeat("[", MaxDepth-1) + "[]" + strings.Repeat("]", MaxDepth-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New([]byte(tt.doc))
			err := s.Skip()
			if err == nil {
				err = s.End()
			}
			if valid := json.Valid([]byte(tt.doc)); valid != (err == nil) {
				t.Fatalf("json.Valid = %v, Skip error = %v", valid, err)
			}
			if err != nil && len(tt.doc) > 2*MaxDepth && strings.Count(tt.doc[:2*MaxDepth], "[") > MaxDepth && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("error %v, want ErrTooDeep", err)
			}
		})
	}
}

func TestTypedReadsCountTowardsTheDepth(t *testing.T) {
	// Object and Array nest through the caller's callbacks: Skip inside
	// them starts from their depth.
	doc := strings.Repeat(`{"a":`, 10) + strings.Repeat("[", MaxDepth-9) + strings.Repeat("]", MaxDepth-9) + strings.Repeat("}", 10)
	s := New([]byte(doc))
	var read func(depth int) error
	read = func(depth int) error {
		return s.Object(func([]byte) error {
			if depth == 9 {
				return s.Skip()
			}
			return read(depth + 1)
		})
	}
	if err := read(0); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("error = %v, want ErrTooDeep one level past the limit", err)
	}
}

func TestDuplicatesAreFoundInLargeObjects(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 200000 {
		fmt.Fprintf(&b, `"k%d":0,`, i)
	}
	b.WriteString(`"k123":0}`)
	s := New([]byte(b.String()))
	if err := s.Object(func([]byte) error { return s.Skip() }); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("error = %v, want ErrDuplicate for the member repeated after 200000 others", err)
	}
}
