package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The strict JSON check below is hand-written rather than built on
// encoding/json/jsontext, which finds duplicate names and bounds depth: in
// Go 1.26 that package exists only with GOEXPERIMENT=jsonv2, and it
// rejects invalid UTF-8 where encoding/json (which decodes the claims)
// replaces it, so it would not accept exactly the documents the claims
// decoder reads.

// maxJSONDepth bounds the nesting of the decoded header and claims: the
// top-level object counts as one.
const maxJSONDepth = 32

// Errors of the strict JSON check.
var (
	errJSONSyntax    = errors.New("invalid JSON")
	errJSONDepth     = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	errJSONDuplicate = errors.New("duplicate JSON object key")
	errJSONNotObject = errors.New("not a JSON object")
)

// checkJSON reports whether doc is one JSON object with no duplicate key
// in any object and no nesting deeper than maxJSONDepth. It accepts exactly
// the documents encoding/json accepts that meet those rules.
func checkJSON(doc []byte) error {
	s := jsonScanner{b: doc}
	s.space()
	if s.peek() != '{' {
		return errJSONNotObject
	}
	if err := s.value(1); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.b) {
		return errJSONSyntax
	}
	return nil
}

// jsonScanner is a validating JSON reader that keeps nothing but the keys
// of the objects it is in.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) value(depth int) error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return errJSONSyntax
}

func (s *jsonScanner) object(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	s.i++ // {
	s.space()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var keys [16][]byte
	n := 0
	var many map[string]struct{} // once an object has more than len(keys) keys
	for {
		s.space()
		if s.peek() != '"' {
			return errJSONSyntax
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if many == nil && n == len(keys) {
			many = make(map[string]struct{}, 2*len(keys))
			for _, k := range keys {
				many[string(k)] = struct{}{}
			}
		}
		if many != nil {
			if _, dup := many[string(key)]; dup {
				return errJSONDuplicate
			}
			many[string(key)] = struct{}{}
		} else {
			for _, k := range keys[:n] {
				if string(k) == string(key) {
					return errJSONDuplicate
				}
			}
			keys[n] = key
			n++
		}
		s.space()
		if s.peek() != ':' {
			return errJSONSyntax
		}
		s.i++
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (s *jsonScanner) array(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	s.i++ // [
	s.space()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// str reads a string and returns its value as encoding/json decodes it:
// the raw bytes when they hold no escape and only ASCII, else the decoded
// value (escapes resolved, invalid UTF-8 replaced), so that keys equal
// after decoding count as duplicates.
func (s *jsonScanner) str() ([]byte, error) {
	start := s.i
	s.i++ // "
	plain := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if plain {
				return s.b[start+1 : s.i-1], nil
			}
			var v string
			if err := json.Unmarshal(bytes.Clone(s.b[start:s.i]), &v); err != nil {
				return nil, errJSONSyntax
			}
			return []byte(v), nil
		case c == '\\':
			plain = false
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if !isHex(s.peek()) {
						return nil, errJSONSyntax
					}
					s.i++
				}
			default:
				return nil, errJSONSyntax
			}
		case c < 0x20:
			return nil, errJSONSyntax
		default:
			if c >= 0x80 {
				plain = false
			}
			s.i++
		}
	}
	return nil, errJSONSyntax
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errJSONSyntax
	}
	s.i += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return errJSONSyntax
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for c := s.peek(); c >= '0' && c <= '9'; c = s.peek() {
		s.i++
		n++
	}
	return n
}
