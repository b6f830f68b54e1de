// Package jsonscan reads a JSON document in one pass without building it:
// the caller walks the objects and arrays it cares about and skips the
// rest, which is checked but never allocated. It is the admission path's
// way to read the few fields of a pod it needs out of a review that is
// mostly other things (resources, probes, owner references, user info).
//
// Why our own reader (internal/server's BenchmarkCodecRead*, docs/performance.md):
// for the recorded three-container pod review it takes 30 µs against
// encoding/json's 76 µs, which is most of the handler's 78 µs. Against
// github.com/go-json-experiment/json (32 µs, and as strict about duplicate
// and case-variant names) it is a tie; it stays because the same pass also
// counts the pod's list items against the limits that bound what one
// review can allocate, which json v2 would need a second pass or six
// custom unmarshalers for.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/pod-identity/injector/internal/quote"
)

// MaxDepth is how deeply arrays and objects may nest, as in encoding/json:
// deeper input is refused with ErrTooDeep before it costs more than a
// small, fixed amount of memory.
const MaxDepth = 10000

// ErrTooDeep says the input nests arrays and objects deeper than MaxDepth.
var ErrTooDeep = fmt.Errorf("arrays and objects nested deeper than %d", MaxDepth)

// Scanner reads one JSON value from a byte slice.
type Scanner struct {
	b []byte
	i int
	// depth is the number of arrays and objects open around the scanner.
	depth int
	// items counts the array elements read or skipped so far.
	items int
}

// Items is the number of array elements the scanner has read or skipped.
func (s *Scanner) Items() int { return s.items }

// New returns a scanner over b.
func New(b []byte) *Scanner { return &Scanner{b: b} }

func (s *Scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("json at offset %d: %s", s.i, fmt.Sprintf(format, args...))
}

// open enters an array or object, refusing to go deeper than MaxDepth.
func (s *Scanner) open() error {
	if s.depth >= MaxDepth {
		return fmt.Errorf("json at offset %d: %w", s.i, ErrTooDeep)
	}
	s.depth++
	return nil
}

// Mark is a place in the input that the scanner can return to.
type Mark struct{ i, depth int }

// Start skips white space and marks where the next value starts, for
// Since and Reset.
func (s *Scanner) Start() Mark {
	s.ws()
	return Mark{s.i, s.depth}
}

// Since returns the bytes read since m.
func (s *Scanner) Since(m Mark) []byte { return s.b[m.i:s.i] }

// Reset moves the scanner back to m, to read the value there again (say,
// raw after a typed read of it failed half way).
func (s *Scanner) Reset(m Mark) {
	s.i, s.depth = m.i, m.depth
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

// ErrDuplicate says an object has the same member twice. An API server
// never sends one (it encodes typed objects), and encoding/json would merge
// or overwrite such members silently, so the review is refused instead.
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
		return s.errorf("expected a JSON object")
	}
	if err := s.open(); err != nil {
		return err
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		s.depth--
		return nil
	}
	// Small objects (every one a pod has but labels and annotations) are
	// checked for duplicates against a list on the stack; a larger one
	// moves to a set, so that checking stays linear in the members.
	var seenArr [16][]byte
	seen := seenArr[:0]
	var seenSet map[string]struct{}
	for {
		if s.peek() != '"' {
			return s.errorf("expected a member name")
		}
		key, err := s.rawString()
		if err != nil {
			return err
		}
		if seenSet != nil {
			if _, dup := seenSet[string(key)]; dup {
				return s.duplicate(key)
			}
			seenSet[string(key)] = struct{}{}
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					return s.duplicate(key)
				}
			}
			if len(seen) < cap(seen) {
				seen = append(seen, key)
			} else {
				seenSet = make(map[string]struct{}, 2*len(seen))
				for _, k := range seen {
					seenSet[string(k)] = struct{}{}
				}
				seenSet[string(key)] = struct{}{}
			}
		}
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
			s.depth--
			return nil
		default:
			return s.errorf("expected a comma or the end of the object")
		}
	}
}

func (s *Scanner) duplicate(key []byte) error {
	return fmt.Errorf("json at offset %d: member %s: %w", s.i, quote.Value(string(key)), ErrDuplicate)
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
	if err := s.open(); err != nil {
		return err
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.items++
		if err := item(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
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

// Skip consumes the next value, checking its syntax. It walks nested
// arrays and objects with a stack of one byte a level rather than by
// recursion, so the deepest input it accepts (MaxDepth) costs it at most
// MaxDepth bytes, and a deeper one is refused with ErrTooDeep: input can
// neither grow a goroutine stack nor overflow it.
func (s *Scanner) Skip() error {
	var closersArr [64]byte
	closers := closersArr[:0] // the closing byte of each open array and object
	for {
		// A value is next.
		switch c := s.peek(); {
		case c == '{' || c == '[':
			if s.depth+len(closers) >= MaxDepth {
				return fmt.Errorf("json at offset %d: %w", s.i, ErrTooDeep)
			}
			s.i++
			closer := byte(']')
			if c == '{' {
				closer = '}'
			}
			if s.peek() == closer {
				s.i++
				break
			}
			closers = append(closers, closer)
			if closer == '}' {
				if err := s.memberName(); err != nil {
					return err
				}
			} else {
				s.items++
			}
			continue
		case c == '"':
			if _, err := s.rawString(); err != nil {
				return err
			}
		case c == 't' || c == 'f':
			if _, err := s.Bool(); err != nil {
				return err
			}
		case c == 'n':
			if !s.Null() {
				return s.errorf("expected null")
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if err := s.number(); err != nil {
				return err
			}
		case c == 0:
			return s.errorf("unexpected end of input")
		default:
			return s.errorf("unexpected character %q", c)
		}
		// A value ended: close what it ended, or go on to the next element.
		for {
			if len(closers) == 0 {
				return nil
			}
			closer := closers[len(closers)-1]
			c := s.peek()
			if c == closer {
				s.i++
				closers = closers[:len(closers)-1]
				continue
			}
			if c != ',' {
				if closer == '}' {
					return s.errorf("expected a comma or the end of the object")
				}
				return s.errorf("expected a comma or the end of the array")
			}
			s.i++
			if closer == '}' {
				if err := s.memberName(); err != nil {
					return err
				}
			} else {
				s.items++
			}
			break
		}
	}
}

// memberName consumes a member name and its colon.
func (s *Scanner) memberName() error {
	if s.peek() != '"' {
		return s.errorf("expected a member name")
	}
	if _, err := s.rawString(); err != nil {
		return err
	}
	if s.peek() != ':' {
		return s.errorf("expected a colon")
	}
	s.i++
	return nil
}

var errNumber = errors.New("bad number")

// ErrCaseVariant says a member's name differs from a wanted one only in
// case. encoding/json would take it for the wanted one; an API server never
// sends one, so the review is refused rather than guessed at.
var ErrCaseVariant = errors.New("member name differs from a known one only in case")

// SkipUnless skips the value of the member key, unless key is a case
// variant of one of known, which returns ErrCaseVariant.
func (s *Scanner) SkipUnless(key []byte, known ...string) error {
	for _, k := range known {
		if bytes.EqualFold(key, []byte(k)) {
			return fmt.Errorf("json at offset %d: member %s, not %q: %w", s.i, quote.Value(string(key)), k, ErrCaseVariant)
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
