package oip

import "testing"

// TestDecodeErrors pins the words of each kind of JSON error an infer body can hold; the scanner
// underneath is shared with ingestion, the words are this API's own.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ body, want string }{
		"not an object":         {`[1]`, `invalid JSON at byte 0: expected '{', found '['`},
		"inputs not an array":   {`{"inputs":5}`, `invalid JSON at byte 10: expected '[', found '5'`},
		"key not a string":      {`{inputs:[]}`, `invalid JSON at byte 1: expected a string, found 'i'`},
		"no colon":              {`{"inputs" []}`, `invalid JSON at byte 10: expected ':', found '['`},
		"object not closed":     {`{"inputs":[] "x":1}`, `invalid JSON at byte 13: expected ',' or '}', found '"'`},
		"array not closed":      {`{"x":[1 2]}`, `invalid JSON at byte 8: expected ',' or ']', found '2'`},
		"bad literal":           {`{"x":nul}`, `invalid JSON at byte 5: expected a value, found 'n'`},
		"bare word":             {`{"x":NaN}`, `invalid JSON at byte 5: expected a number, found 'N'`},
		"minus alone":           {`{"x":-}`, `invalid JSON at byte 5: expected a number, found '-'`},
		"no fraction digit":     {`{"x":1.}`, `invalid JSON at byte 5: expected a number, found '1'`},
		"ends in data":          {`{"inputs":[{"data":[1,`, `invalid JSON: expected a number, found the end of the body`},
		"out of range":          {`{"x":[1e400]}`, `number 1e400 at byte 6 is out of range`},
		"control character":     {"{\"id\":\"a\tb\"}", `id: invalid JSON at byte 8: control character in string`},
		"bad escape":            {`{"id":"a\x"}`, `id: invalid JSON string at byte 6: invalid character 'x' in string escape code`},
		"bad unicode escape":    {`{"id":"\u12g4"}`, `id: invalid JSON string at byte 6: invalid character 'g' in \u hexadecimal character escape`},
		"cut unicode escape":    {`{"id":"\u12`, `id: invalid JSON: unterminated string at byte 6`},
		"unterminated":          {`{"id":"abc`, `id: invalid JSON: unterminated string at byte 6`},
		"too deep":              {`{"x":` + nested(64) + `}`, `JSON nested deeper than 64 levels`},
		"trailing data":         {`{"inputs":[]} x`, `invalid JSON at byte 14: expected the end of the body, found 'x'`},
		"string in data":        {`{"inputs":[{"name":"f","data":["a"]}]}`, `input "f": invalid JSON at byte 31: expected a number, found '"'`},
		"no inputs":             {`{"inputs":[]}`, `the request has no inputs`},
		"output without name":   {`{"outputs":[{}]}`, `an entry of outputs has no name`},
		"data deeper than rank": {`{"inputs":[{"name":"f","data":` + nested(9) + `}]}`, `input "f": data nested deeper than 8 levels`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var r inferRequest
			err := decodeInferRequest([]byte(tc.body), &r)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// nested is n arrays, one inside the other, around a 1.
func nested(n int) string {
	s := "1"
	for range n {
		s = "[" + s + "]"
	}
	return s
}
