// Package jsonscan reads a JSON document in one pass without building it:
// the caller walks the objects and arrays it cares about and skips the
// rest, which is checked but never allocated. It is the admission path's
// way to read the few fields of a pod it needs out of a review that is
// mostly other things (resources, probes, owner references, user info).
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Scanner reads one JSON value from a byte slice.
type Scanner struct {
	b []byte
	i int
}

// New returns a scanner over b.
func New(b []byte) *Scanner { return &Scanner{b: b} }

func (s *Scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("json at offset %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next significant byte, or 0 at the end.
func (s *Scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// End checks that nothing but white space follows.
func (s *Scanner) End() error {
	if s.ws(); s.i < len(s.b) {
		return s.errorf("unexpected data after the value")
	}
	return nil
}

// Null consumes a null if one is next, and says so.
func (s *Scanner) Null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// ErrDuplicate says an object has the same member twice; encoding/json
// merges or overwrites such members, and the caller should let it decide.
var ErrDuplicate = errors.New("duplicate member name")

// Object calls field for each member of the object that is next, with the
// member's key; field must consume the value (Skip it if it does not
// want it). A null counts as an empty object. A member name that appears
// twice is ErrDuplicate.
func (s *Scanner) Object(field func(key []byte) error) error {
	if s.Null() {
		return nil
	}
	if s.peek() != '{' {
		return s.errorf("expected an object")
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var seenArr [16][]byte
	seen := seenArr[:0]
	for {
		if s.peek() != '"' {
			return s.errorf("expected a member name")
		}
		key, err := s.rawString()
		if err != nil {
			return err
		}
		for _, k := range seen {
			if bytes.Equal(k, key) {
				return ErrDuplicate
			}
		}
		seen = append(seen, key)
		if s.peek() != ':' {
			return s.errorf("expected a colon")
		}
		s.i++
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("expected a comma or the end of the object")
		}
	}
}

// Array calls item for each element of the array that is next; item must
// consume the element. A null counts as no array.
func (s *Scanner) Array(item func() error) error {
	if s.Null() {
		return nil
	}
	if s.peek() != '[' {
		return s.errorf("expected an array")
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("expected a comma or the end of the array")
		}
	}
}

// rawString consumes a string and returns its contents without the quotes,
// unescaped only when it has escapes (then freshly allocated).
func (s *Scanner) rawString() ([]byte, error) {
	start := s.i + 1
	escaped := false
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			raw := s.b[start:j]
			if !escaped && utf8.Valid(raw) {
				return raw, nil
			}
			var str string
			if err := json.Unmarshal(s.b[start-1:j+1], &str); err != nil {
				return nil, s.errorf("bad string: %v", err)
			}
			return []byte(str), nil
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			return nil, s.errorf("control character in a string")
		}
	}
	return nil, s.errorf("unterminated string")
}

// String consumes a string (or null, as "").
func (s *Scanner) String() (string, error) {
	if s.Null() {
		return "", nil
	}
	if s.peek() != '"' {
		return "", s.errorf("expected a string")
	}
	raw, err := s.rawString()
	return string(raw), err
}

// Bool consumes a boolean; null is false.
func (s *Scanner) Bool() (bool, error) {
	if s.Null() {
		return false, nil
	}
	switch {
	case bytes.HasPrefix(s.b[s.i:], []byte("true")):
		s.i += 4
		return true, nil
	case bytes.HasPrefix(s.b[s.i:], []byte("false")):
		s.i += 5
		return false, nil
	}
	return false, s.errorf("expected a boolean")
}

// StringMap consumes an object of strings.
func (s *Scanner) StringMap() (map[string]string, error) {
	if s.Null() {
		return nil, nil
	}
	m := map[string]string{}
	err := s.Object(func(key []byte) error {
		v, err := s.String()
		m[string(key)] = v
		return err
	})
	return m, err
}

// Raw consumes the next value and returns its bytes.
func (s *Scanner) Raw() ([]byte, error) {
	s.ws()
	start := s.i
	if err := s.Skip(); err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// Skip consumes the next value, checking its syntax.
func (s *Scanner) Skip() error {
	switch c := s.peek(); {
	case c == '{':
		return s.Object(func([]byte) error { return s.Skip() })
	case c == '[':
		return s.Array(s.Skip)
	case c == '"':
		_, err := s.rawString()
		return err
	case c == 't' || c == 'f':
		_, err := s.Bool()
		return err
	case c == 'n':
		if !s.Null() {
			return s.errorf("expected null")
		}
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 0:
		return s.errorf("unexpected end of input")
	default:
		return s.errorf("unexpected character %q", c)
	}
}

var errNumber = errors.New("bad number")

// ErrCaseVariant says a member's name differs from a wanted one only in
// case: encoding/json would match it, so the caller should let it decide.
var ErrCaseVariant = errors.New("member name is a case variant of a known one")

// SkipUnless skips the value of the member key, unless key is a case
// variant of one of known, which returns ErrCaseVariant.
func (s *Scanner) SkipUnless(key []byte, known ...string) error {
	for _, k := range known {
		if bytes.EqualFold(key, []byte(k)) {
			return ErrCaseVariant
		}
	}
	return s.Skip()
}

// number consumes a number following JSON's grammar.
func (s *Scanner) number() error {
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	digits := func() int {
		n := 0
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
			n++
		}
		return n
	}
	switch {
	case j < len(s.b) && s.b[j] == '0':
		j++
	case digits() == 0:
		return s.errorf("%v", errNumber)
	}
	if j < len(s.b) && s.b[j] == '.' {
		j++
		if digits() == 0 {
			return s.errorf("%v", errNumber)
		}
	}
	if j < len(s.b) && (s.b[j] == 'e' || s.b[j] == 'E') {
		j++
		if j < len(s.b) && (s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return s.errorf("%v", errNumber)
		}
	}
	s.i = j
	return nil
}
