// Package jsonscan is the JSON scanner under the hand-written request decoders (ingestion events,
// Open Inference Protocol infer bodies). It reads strings, numbers, literals, objects and arrays
// straight out of the body: no reflection, no value per token, strings without escapes returned
// as slices of the body. It holds the JSON grammar (RFC 8259) strictly; what a document must
// contain, and the words of each error, stay with the decoder, which turns an *Error into its
// API's message. FuzzScanner checks it against encoding/json.
package jsonscan

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is what an Error found wrong.
type Kind uint8

const (
	WantObject         Kind = iota + 1 // '{' expected
	WantArray                          // '[' expected
	WantString                         // a string (an object key) expected
	WantColon                          // ':' after a key expected
	WantCommaOrBrace                   // ',' or '}' expected in an object
	WantCommaOrBracket                 // ',' or ']' expected in an array
	WantValue                          // no JSON value starts here
	ControlCharacter                   // a raw control character inside a string
	BadEscape                          // a '\' followed by a letter JSON does not define
	BadUnicodeEscape                   // '\u' not followed by four hex digits
	UnterminatedString                 // the text ends inside a string
	BadNumber                          // a '-' with no digit after it
	NoFractionDigit                    // a '.' with no digit after it
	NoExponentDigit                    // an exponent with no digit
	OutOfRange                         // a number beyond float64's range
	TooDeep                            // a value nested deeper than the limit
)

var kindText = [...]string{
	WantObject:         "'{'",
	WantArray:          "'['",
	WantString:         "a string",
	WantColon:          "':' after a key",
	WantCommaOrBrace:   "',' or '}' in an object",
	WantCommaOrBracket: "',' or ']' in an array",
	WantValue:          "a JSON value",
	ControlCharacter:   "no control character inside a string",
	BadEscape:          "a valid escape after '\\'",
	BadUnicodeEscape:   "four hex digits after \\u",
	UnterminatedString: "the closing '\"' of a string",
	BadNumber:          "a digit in a number",
	NoFractionDigit:    "a digit after '.'",
	NoExponentDigit:    "a digit in the exponent",
	OutOfRange:         "a number within the float64 range",
	TooDeep:            "less nesting",
}

// Error is a place where the text is not the JSON its reader wants.
type Error struct {
	Kind Kind
	// Offset is the byte where the problem is: the one found instead of what was wanted, or the
	// length of the text when the text ends too soon (then EOF is set). For BadUnicodeEscape it
	// is the first of the four bytes after '\u'.
	Offset int
	EOF    bool
	// Found is the byte at Offset, when not EOF.
	Found byte
	// Start is where the token in question begins: a string's opening quote, a number's first
	// byte. Elsewhere it equals Offset.
	Start int
}

// Error says what was wanted and what was found. These are the words the ingestion API answers
// with; the OIP server words its own.
func (e *Error) Error() string {
	if e.EOF {
		return fmt.Sprintf("invalid JSON: the input ends where %s should be", kindText[e.Kind])
	}
	return fmt.Sprintf("invalid JSON at byte %d: found %q where %s should be", e.Offset, e.Found, kindText[e.Kind])
}

// Scanner is a cursor over one JSON text. The zero value scans an empty text; Reset starts on
// another one and keeps the buffers.
type Scanner struct {
	data []byte
	pos  int
	buf  []byte // unescaped strings
	// KeepStrings keeps every unescaped string valid until the next Reset; without it a string
	// that had escapes is valid only until the next String call. Strings without escapes are
	// slices of the text either way.
	KeepStrings bool
}

// Reset starts the scanner at the first byte of data.
func (s *Scanner) Reset(data []byte) {
	s.data, s.pos, s.buf = data, 0, s.buf[:0]
}

// Pos is the offset of the cursor.
func (s *Scanner) Pos() int { return s.pos }

// EOF tells whether the cursor is past the last byte.
func (s *Scanner) EOF() bool { return s.pos >= len(s.data) }

// Peek returns the byte at the cursor, or 0 past the end (a 0 byte in the text reads the same;
// use EOF to tell them apart).
func (s *Scanner) Peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// The scanning loops below work on locals, not the scanner's fields: the compiler then keeps the
// cursor in a register and drops the bounds checks, which more than doubles their speed.

// SkipSpace moves past JSON whitespace.
func (s *Scanner) SkipSpace() {
	data, i := s.data, s.pos
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	s.pos = i
}

// Fail returns an Error of kind k at the cursor, for a decoder that found something else than
// what it wants there.
func (s *Scanner) Fail(k Kind) *Error { return s.failAt(k, s.pos) }

func (s *Scanner) failAt(k Kind, start int) *Error {
	e := &Error{Kind: k, Offset: s.pos, Start: start}
	if s.pos >= len(s.data) {
		e.Offset, e.EOF = len(s.data), true
	} else {
		e.Found = s.data[s.pos]
	}
	return e
}

// Text is the whole text being scanned.
func (s *Scanner) Text() []byte { return s.data }

// Literal moves past word (true, false or null) if the text holds it at the cursor.
func (s *Scanner) Literal(word string) bool {
	if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// String reads the string at the cursor and returns its contents, unescaped. Without escapes
// they are a slice of the text; with escapes they live in the scanner's buffer (see
// KeepStrings). A lone UTF-16 surrogate becomes U+FFFD, as in encoding/json; other bytes are
// returned as they are, valid UTF-8 or not.
func (s *Scanner) String() ([]byte, error) {
	if s.Peek() != '"' {
		return nil, s.Fail(WantString)
	}
	quote := s.pos
	start := quote + 1
	data := s.data
	// Fast path: no escapes, the common case for ids, names and keys.
	for i := start; i < len(data); i++ {
		c := data[i]
		if c != '"' && c != '\\' && c >= 0x20 {
			continue
		}
		s.pos = i
		switch {
		case c == '"':
			s.pos++
			return data[start:i], nil
		case c == '\\':
			return s.unescape(quote)
		default:
			return nil, s.failAt(ControlCharacter, quote)
		}
	}
	s.pos = len(data)
	return nil, s.failAt(UnterminatedString, quote)
}

// unescape reads the rest of the string that starts at quote; the cursor is at its first '\'.
func (s *Scanner) unescape(quote int) ([]byte, error) {
	if !s.KeepStrings {
		s.buf = s.buf[:0]
	}
	from := len(s.buf)
	s.buf = append(s.buf, s.data[quote+1:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.buf[from:len(s.buf):len(s.buf)], nil
		case c < 0x20:
			return nil, s.failAt(ControlCharacter, quote)
		case c != '\\':
			s.buf = append(s.buf, c)
			s.pos++
			continue
		}
		s.pos++ // '\\'
		if s.EOF() {
			break
		}
		e := s.data[s.pos]
		s.pos++
		switch e {
		case '"', '\\', '/':
			s.buf = append(s.buf, e)
		case 'b':
			s.buf = append(s.buf, '\b')
		case 'f':
			s.buf = append(s.buf, '\f')
		case 'n':
			s.buf = append(s.buf, '\n')
		case 'r':
			s.buf = append(s.buf, '\r')
		case 't':
			s.buf = append(s.buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, s.failAt(BadUnicodeEscape, quote)
			}
			if utf16.IsSurrogate(r) {
				// A pair decodes to one rune; a lone half becomes U+FFFD, as in encoding/json.
				save := s.pos
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					s.pos += 2
					if r2, ok := s.hex4(); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							s.buf = utf8.AppendRune(s.buf, dec)
							continue
						}
					}
				}
				s.pos = save
				r = utf8.RuneError
			}
			s.buf = utf8.AppendRune(s.buf, r)
		default:
			s.pos--
			return nil, s.failAt(BadEscape, quote)
		}
	}
	s.pos = len(s.data)
	return nil, s.failAt(UnterminatedString, quote)
}

func (s *Scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// Number reads the number at the cursor, checked against the JSON grammar, as a float64, which
// must be within its range. On a range error the cursor is past the number and the Error's Start
// and Offset enclose its text.
func (s *Scanner) Number() (float64, error) {
	start := s.pos
	if k := s.scanNumber(); k != 0 {
		return 0, s.failAt(k, start)
	}
	// string(...) in the call does not escape, so it does not allocate.
	v, err := strconv.ParseFloat(string(s.data[start:s.pos]), 64)
	if err != nil {
		// With the grammar checked, the only error left is the range.
		return 0, &Error{Kind: OutOfRange, Offset: s.pos, Start: start, EOF: s.EOF(), Found: s.Peek()}
	}
	return v, nil
}

// scanNumber moves past a number and returns what is wrong with it, or 0. It stops at the first
// byte the grammar does not allow, as encoding/json does: "1.5.2" is the number 1.5 and then a
// '.' that the caller's grammar refuses.
func (s *Scanner) scanNumber() Kind {
	k, i := scanNumber(s.data, s.pos)
	s.pos = i
	return k
}

// scanNumber is the grammar of a number, over locals so that the cursor stays in a register.
func scanNumber(data []byte, i int) (Kind, int) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return BadNumber, i
	}
	if i < len(data) && data[i] == '.' {
		i++
		from := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == from {
			return NoFractionDigit, i
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		from := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == from {
			return NoExponentDigit, i
		}
	}
	return 0, i
}

// Object walks the object at the cursor: for each member it reads the key and the ':' and calls
// fn with the key (valid as String's results are) and the cursor at the value, which fn must
// consume.
func (s *Scanner) Object(fn func(key []byte) error) error {
	if s.Peek() != '{' {
		return s.Fail(WantObject)
	}
	s.pos++
	s.SkipSpace()
	if s.Peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.SkipSpace()
		key, err := s.String()
		if err != nil {
			return err
		}
		s.SkipSpace()
		if s.Peek() != ':' {
			return s.Fail(WantColon)
		}
		s.pos++
		s.SkipSpace()
		if err := fn(key); err != nil {
			return err
		}
		s.SkipSpace()
		switch s.Peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.Fail(WantCommaOrBrace)
		}
	}
}

// Array walks the array at the cursor, calling fn with the cursor at each element, which fn
// must consume.
func (s *Scanner) Array(fn func() error) error {
	if s.Peek() != '[' {
		return s.Fail(WantArray)
	}
	s.pos++
	s.SkipSpace()
	if s.Peek() == ']' {
		s.pos++
		return nil
	}
	for {
		s.SkipSpace()
		if err := fn(); err != nil {
			return err
		}
		s.SkipSpace()
		switch s.Peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.Fail(WantCommaOrBracket)
		}
	}
}

// Numbers says how Skip treats numbers.
type Numbers bool

const (
	// AnyNumber accepts every number the grammar allows, however large: for opaque values
	// that are passed on, not read.
	AnyNumber Numbers = false
	// FiniteNumbers refuses numbers beyond float64's range (OutOfRange).
	FiniteNumbers Numbers = true
)

// Skip moves past one value, checking it; no value inside it may lie more than limit arrays or
// objects deep.
func (s *Scanner) Skip(limit int, numbers Numbers) error {
	return s.skip(0, limit, numbers)
}

func (s *Scanner) skip(depth, limit int, numbers Numbers) error {
	if depth > limit {
		return s.Fail(TooDeep)
	}
	switch c := s.Peek(); {
	case c == '"':
		_, err := s.String()
		return err
	case c == '{':
		return s.Object(func([]byte) error { return s.skip(depth+1, limit, numbers) })
	case c == '[':
		return s.Array(func() error { return s.skip(depth+1, limit, numbers) })
	case c == '-' || c >= '0' && c <= '9':
		if numbers == FiniteNumbers {
			_, err := s.Number()
			return err
		}
		start := s.pos
		if k := s.scanNumber(); k != 0 {
			return s.failAt(k, start)
		}
		return nil
	case c == 't' && s.Literal("true"), c == 'f' && s.Literal("false"), c == 'n' && s.Literal("null"):
		return nil
	}
	return s.Fail(WantValue)
}
