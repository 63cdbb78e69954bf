package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// skipAll reads one value and then the end of the text, as a decoder of a whole body does.
func skipAll(text string, limit int, numbers Numbers) error {
	var s Scanner
	s.Reset([]byte(text))
	s.SkipSpace()
	if err := s.Skip(limit, numbers); err != nil {
		return err
	}
	s.SkipSpace()
	if !s.EOF() {
		return s.Fail(WantValue)
	}
	return nil
}

func TestErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		text    string
		numbers Numbers
		limit   int
		want    *Error
	}{
		"empty":                 {text: "", want: &Error{Kind: WantValue, EOF: true}},
		"bare word":             {text: "nul", want: &Error{Kind: WantValue, Found: 'n'}},
		"key not a string":      {text: `{a:1}`, want: &Error{Kind: WantString, Offset: 1, Start: 1, Found: 'a'}},
		"no colon":              {text: `{"a" 1}`, want: &Error{Kind: WantColon, Offset: 5, Start: 5, Found: '1'}},
		"trailing comma":        {text: `{"a":1,}`, want: &Error{Kind: WantString, Offset: 7, Start: 7, Found: '}'}},
		"object not closed":     {text: `{"a":1 "b":2}`, want: &Error{Kind: WantCommaOrBrace, Offset: 7, Start: 7, Found: '"'}},
		"array not closed":      {text: `[1 2]`, want: &Error{Kind: WantCommaOrBracket, Offset: 3, Start: 3, Found: '2'}},
		"array ends early":      {text: `[1,`, want: &Error{Kind: WantValue, Offset: 3, Start: 3, EOF: true}},
		"control character":     {text: "[\"a\tb\"]", want: &Error{Kind: ControlCharacter, Offset: 3, Start: 1, Found: '\t'}},
		"control after escape":  {text: "\"\\n\x01\"", want: &Error{Kind: ControlCharacter, Offset: 3, Start: 0, Found: 1}},
		"bad escape":            {text: `"ab\x"`, want: &Error{Kind: BadEscape, Offset: 4, Start: 0, Found: 'x'}},
		"bad unicode escape":    {text: `"\u12g4"`, want: &Error{Kind: BadUnicodeEscape, Offset: 3, Start: 0, Found: '1'}},
		"short unicode escape":  {text: `"\u12`, want: &Error{Kind: BadUnicodeEscape, Offset: 3, Start: 0, Found: '1'}},
		"unterminated":          {text: `"abc`, want: &Error{Kind: UnterminatedString, Offset: 4, EOF: true}},
		"escape at the end":     {text: `"abc\`, want: &Error{Kind: UnterminatedString, Offset: 5, EOF: true}},
		"minus alone":           {text: `[-]`, want: &Error{Kind: BadNumber, Offset: 2, Start: 1, Found: ']'}},
		"no fraction digit":     {text: `1.e5`, want: &Error{Kind: NoFractionDigit, Offset: 2, Found: 'e'}},
		"no exponent digit":     {text: `1e+`, want: &Error{Kind: NoExponentDigit, Offset: 3, EOF: true}},
		"leading zero":          {text: `01`, want: &Error{Kind: WantValue, Offset: 1, Start: 1, Found: '1'}},
		"out of range":          {text: `[1e400]`, numbers: FiniteNumbers, want: &Error{Kind: OutOfRange, Offset: 6, Start: 1, Found: ']'}},
		"too deep":              {text: `[[[1]]]`, limit: 1, want: &Error{Kind: TooDeep, Offset: 2, Start: 2, Found: '['}},
		"deep enough":           {text: `[[],1]`, limit: 1},
		"out of range accepted": {text: `{"a":[1e400,-0.5E-3,true,false,null,"\ud83d\ude00"]}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			limit := tc.limit
			if limit == 0 {
				limit = 64
			}
			err := skipAll(tc.text, limit, tc.numbers)
			var got *Error
			if err != nil {
				got = err.(*Error)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ text, want string }{
		"plain":          {`"freight"`, "freight"},
		"short escapes":  {`"a\"b\\c\/d\be\ff\ng\rh\ti"`, "a\"b\\c/d\be\ff\ng\rh\ti"},
		"unicode":        {`"\u00e9\u20AC"`, "é€"},
		"surrogate pair": {`"\ud83d\ude00"`, "😀"},
		"lone surrogate": {`"\ud83dx"`, "\uFFFDx"},
		"raw invalid":    {"\"\xff\"", "\xff"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var s Scanner
			s.Reset([]byte(tc.text))
			got, err := s.String()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKeepStrings(t *testing.T) {
	t.Parallel()
	var s Scanner
	s.KeepStrings = true
	s.Reset([]byte(`["a\n","b\t","c"]`))
	var got []string
	var kept [][]byte
	err := s.Array(func() error {
		v, err := s.String()
		kept = append(kept, v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range kept {
		got = append(got, string(v))
	}
	if diff := cmp.Diff([]string{"a\n", "b\t", "c"}, got); diff != "" {
		t.Errorf("strings after the array (-want +got):\n%s", diff)
	}
}

// toValidUTF8 replaces each byte that is not part of valid UTF-8 with U+FFFD, as encoding/json
// does when it decodes a string.
func toValidUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += n
	}
	return b.String()
}

// FuzzScanner checks the scanner against encoding/json: a whole text is accepted exactly when
// json.Valid accepts it; a string reads as encoding/json reads it (apart from invalid UTF-8,
// which the scanner passes on and encoding/json replaces); a number reads as the same float64,
// and is refused exactly when encoding/json cannot hold it in one.
func FuzzScanner(f *testing.F) {
	for _, seed := range []string{
		`{"id":"a","features":{"x":1.5e3,"y":-0},"shipment":{"to":["NLRTM",null,true,false]}}`,
		`"a\u00e9\ud83d\ude00\n"`, `"\ud800"`, `-12.5E-7`, `1e400`, `[1,,2]`, `{"a" :1 , "b":[ ]}`,
		"\"\xff\xfe\"", `[01]`, `[1.]`, `"\u12"`, `{"a":1}x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		// The limit is encoding/json's own, so that depth never explains a difference.
		err := skipAll(string(text), 10000, AnyNumber)
		if valid := json.Valid(text); valid != (err == nil) {
			t.Fatalf("json.Valid says %v, the scanner says %v", valid, err)
		}

		var s Scanner
		s.Reset(text)
		s.SkipSpace()
		switch c := s.Peek(); {
		case c == '"':
			got, err := s.String()
			var want string
			if jerr := json.Unmarshal(text[:s.Pos()], &want); (jerr == nil) != (err == nil) {
				t.Fatalf("encoding/json says %v, the scanner says %v", jerr, err)
			}
			if err == nil && toValidUTF8(string(got)) != want {
				t.Fatalf("the scanner reads %q, encoding/json %q", got, want)
			}
		case c == '-' || c >= '0' && c <= '9':
			start := s.Pos()
			got, err := s.Number()
			if err != nil && err.(*Error).Kind != OutOfRange {
				return // not a number token; json.Valid covered the grammar
			}
			tok := text[start:s.Pos()]
			var want float64
			if jerr := json.Unmarshal(tok, &want); (jerr == nil) != (err == nil) {
				t.Fatalf("%s: encoding/json says %v, the scanner says %v", tok, jerr, err)
			}
			if err == nil && got != want {
				t.Fatalf("%s: the scanner reads %v, encoding/json %v", tok, got, want)
			}
		}
	})
}
