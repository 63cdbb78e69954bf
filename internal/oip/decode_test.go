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
		"id not UTF-8":          {"{\"id\":\"a\xff\xfe\"}", `id: invalid JSON at byte 8: '\xff' in a string is not UTF-8`},
		"name not UTF-8":        {"{\"inputs\":[{\"name\":\"f\xc3\",\"data\":[1]}]}", `invalid JSON at byte 21: '\xc3' in a string is not UTF-8`},
		"id twice":              {`{"id":"a","inputs":[],"id":"b"}`, `"id" is given twice`},
		"inputs twice":          {`{"inputs":[],"inputs":[]}`, `"inputs" is given twice`},
		"shape twice":           {`{"inputs":[{"name":"f","shape":[1],"shape":[12]}]}`, `input "f": "shape" is given twice`},
		"data twice":            {`{"inputs":[{"name":"f","data":[1],"data":[2]}]}`, `input "f": "data" is given twice`},
		"name twice":            {`{"inputs":[{"name":"f","name":"g"}]}`, `input "f": "name" is given twice`},
		"datatype twice":        {`{"inputs":[{"datatype":"FP32","datatype":"INT8"}]}`, `"datatype" is given twice`},
		"output name twice":     {`{"outputs":[{"name":"a","name":"b"}]}`, `output "a": "name" is given twice`},
		"parameters twice":      {`{"parameters":{},"parameters":{}}`, `"parameters" is given twice`},
		"binary input":          {`{"inputs":[{"name":"f","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, `input "f": parameters.binary_data_size: the binary tensor extension is not supported; send and receive tensors as JSON data`},
		"binary output":         {`{"outputs":[{"name":"p","parameters":{"binary_data":true}}]}`, `output "p": parameters.binary_data: the binary tensor extension is not supported; send and receive tensors as JSON data`},
		"binary outputs":        {`{"parameters":{"binary_data_output":true}}`, `parameters.binary_data_output: the binary tensor extension is not supported; send and receive tensors as JSON data`},
		"INT8 out of range":     {`{"inputs":[{"name":"f","shape":[2],"datatype":"INT8","data":[1,1000]}]}`, `input "f": value 1 of data is 1000, beyond INT8's -128 to 127`},
		"UINT8 negative":        {`{"inputs":[{"name":"f","data":[3,-1],"shape":[2],"datatype":"UINT8"}]}`, `input "f": value 1 of data is -1, beyond UINT8's 0 to 255`},
		"BOOL number":           {`{"inputs":[{"name":"f","shape":[2],"datatype":"BOOL","data":[true,5]}]}`, `input "f": value 1 of data is 5; BOOL holds true or false`},
		"FP32 boolean":          {`{"inputs":[{"name":"f","shape":[2],"datatype":"FP32","data":[0.5,false]}]}`, `input "f": value 1 of data is false; FP32 holds numbers, not true or false`},
		"FP16 out of range":     {`{"inputs":[{"name":"f","shape":[1],"datatype":"FP16","data":[[70000]]}]}`, `input "f": value 0 of data is 70000, beyond the range of FP16 (±65504)`},
		"INT16 fraction":        {`{"inputs":[{"name":"f","shape":[3],"datatype":"INT16","data":[1,2.5,3]}]}`, `input "f": value 1 of data is 2.5, not an integer, which INT16 holds`},
		"too deep":              {`{"x":` + nested(64) + `}`, `JSON nested deeper than 64 levels`},
		"trailing data":         {`{"inputs":[]} x`, `invalid JSON at byte 14: expected the end of the body, found 'x'`},
		"string in data":        {`{"inputs":[{"name":"f","shape":[1],"datatype":"INT64","data":["a"]}]}`, `input "f": value 0 of data is a string; INT64 holds numbers`},
		"number in BYTES":       {`{"inputs":[{"name":"f","shape":[2],"datatype":"BYTES","data":["a",1]}]}`, `input "f": value 1 of data is not a string; BYTES holds strings`},
		"string in BOOL":        {`{"inputs":[{"name":"f","shape":[2],"datatype":"BOOL","data":[true,"a"]}]}`, `input "f": value 1 of data is a string; BOOL holds true or false`},
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
