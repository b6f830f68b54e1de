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
		" { \"a\" : [ 1 , 2 ] }\n", " \t\r\n[]", `19`, `9e9`, `-9.99E-9`, `[9,99]`, `1e+`, `-a`, `{"a":1 "b":2}`, `[1 2]`, `{"a"}`, `{1:2}`,
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

func TestItemsCountsEveryArrayElementReadOrSkipped(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		items     int
	}{
		{name: "nested arrays and objects", doc: `[1,[2,3],{"a":[4]},[]]`, items: 7},
		{name: "an object holds no items of its own", doc: `{"a":1,"b":{"c":2}}`, items: 0},
		{name: "empty arrays count nothing", doc: `[[],[[]]]`, items: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New([]byte(tt.doc))
			if err := s.Skip(); err != nil {
				t.Fatal(err)
			}
			if s.Items() != tt.items {
				t.Errorf("Skip counted %d items, want %d", s.Items(), tt.items)
			}
		})
	}
	s := New([]byte(`[1,2,[3]]`))
	if err := s.Array(func() error { return s.Skip() }); err != nil || s.Items() != 4 {
		t.Errorf("Array counted %d items (%v), want 4", s.Items(), err)
	}
}

func TestTypedReadsNestedPastTheLimitAreRefused(t *testing.T) {
	read := func(depth int) error {
		s := New([]byte(strings.Repeat("[", depth) + strings.Repeat("]", depth)))
		var level func() error
		level = func() error { return s.Array(level) }
		return s.Array(level)
	}
	if err := read(MaxDepth); err != nil {
		t.Fatalf("arrays read to the limit: %v", err)
	}
	if err := read(MaxDepth + 1); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("arrays read one past the limit: %v, want ErrTooDeep", err)
	}
}

func TestTypedReadsAgreeWithEncodingJSON(t *testing.T) {
	t.Run("strings, and null as empty", func(t *testing.T) {
		for _, doc := range []string{`"a"`, `null`, ` "x" `} {
			var want string
			_ = json.Unmarshal([]byte(doc), &want)
			if got, err := New([]byte(doc)).String(); err != nil || got != want {
				t.Errorf("%s: %q, %v; want %q", doc, got, err, want)
			}
		}
		for _, doc := range []string{`1`, `"open`, "\"\x1f\"", `{}`} {
			if _, err := New([]byte(doc)).String(); err == nil {
				t.Errorf("%s read as a string", doc)
			}
		}
	})
	t.Run("booleans, and null as false", func(t *testing.T) {
		for doc, want := range map[string]bool{`true`: true, `false`: false, `null`: false, ` true`: true} {
			if got, err := New([]byte(doc)).Bool(); err != nil || got != want {
				t.Errorf("%s: %v, %v; want %v", doc, got, err, want)
			}
		}
		for _, doc := range []string{`1`, `"true"`, `tru`, `fals`} {
			if _, err := New([]byte(doc)).Bool(); err == nil {
				t.Errorf("%s read as a boolean", doc)
			}
		}
	})
	t.Run("string maps", func(t *testing.T) {
		for _, doc := range []string{`{"a":"1","b":""}`, `{}`, `null`} {
			var want map[string]string
			_ = json.Unmarshal([]byte(doc), &want)
			got, err := New([]byte(doc)).StringMap()
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || (got == nil) != (want == nil) {
				t.Errorf("%s: %v, %v; want %v", doc, got, err, want)
			}
		}
		for _, doc := range []string{`{"a":1}`, `[]`, `{"a":"1","a":"2"}`} {
			if _, err := New([]byte(doc)).StringMap(); err == nil {
				t.Errorf("%s read as a string map", doc)
			}
		}
	})
	t.Run("a case variant of a known member is refused, others skipped", func(t *testing.T) {
		s := New([]byte(`{"Kind":1}`))
		if err := s.Object(func(k []byte) error { return s.SkipUnless(k, "kind") }); !errors.Is(err, ErrCaseVariant) {
			t.Errorf("error = %v, want ErrCaseVariant", err)
		}
		s = New([]byte(`{"other":[1,{"x":2}],"kind":"Pod"}`))
		var kind string
		err := s.Object(func(k []byte) error {
			if string(k) == "kind" {
				var err error
				kind, err = s.String()
				return err
			}
			return s.SkipUnless(k, "kind")
		})
		if err != nil || kind != "Pod" || s.End() != nil {
			t.Errorf("kind %q, %v", kind, err)
		}
	})
	t.Run("raw values, marks and going back", func(t *testing.T) {
		s := New([]byte(`{"a": [1, {"b":2}] , "c":3}`))
		var raw []byte
		err := s.Object(func(k []byte) error {
			if string(k) != "a" {
				return s.Skip()
			}
			m := s.Start()
			if err := s.Array(func() error { return s.Skip() }); err != nil {
				return err
			}
			first := string(s.Since(m))
			s.Reset(m)
			var err error
			raw, err = s.Raw()
			if first != string(raw) {
				t.Errorf("read twice: %q then %q", first, raw)
			}
			return err
		})
		if err != nil || string(raw) != `[1, {"b":2}]` || s.End() != nil {
			t.Errorf("raw %q, %v", raw, err)
		}
	})
	t.Run("trailing data is an error", func(t *testing.T) {
		s := New([]byte(`{} {}`))
		if err := s.Skip(); err != nil || s.End() == nil {
			t.Errorf("skip %v, end %v", err, s.End())
		}
	})
}

func TestSiblingsDoNotAddToTheDepth(t *testing.T) {
	// Many objects and arrays side by side, empty and not, read with the
	// typed reads: only nesting counts towards MaxDepth.
	doc := "[" + strings.TrimSuffix(strings.Repeat(`{},{"a":[]},[],[1],`, MaxDepth), ",") + "]"
	s := New([]byte(doc))
	n := 0
	err := s.Array(func() error {
		n++
		if s.peek() == '{' {
			return s.Object(func([]byte) error { return s.Array(func() error { return s.Skip() }) })
		}
		return s.Array(func() error { return s.Skip() })
	})
	if err != nil || n != 4*MaxDepth || s.End() != nil {
		t.Fatalf("read %d of %d siblings: %v", n, 4*MaxDepth, err)
	}
}

func TestSyntaxErrorsSayWhatWasExpected(t *testing.T) {
	for doc, want := range map[string]string{
		`[1 2]`:         "end of the array",
		`{"a":1 "b":2}`: "end of the object",
		`{"a" 1}`:       "colon",
		`{1:2}`:         "member name",
	} {
		t.Run(doc, func(t *testing.T) {
			if err := New([]byte(doc)).Skip(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error = %v, want one about the %s", err, want)
			}
		})
	}
}
