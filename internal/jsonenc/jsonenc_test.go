package jsonenc

import (
	"encoding/json"
	"testing"
)

func checkMatchesMarshal(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
		t.Errorf("AppendString(%q) = %s, json.Marshal writes %s", s, got[len("prefix"):], want)
	}
}

func TestAppendStringMatchesMarshal(t *testing.T) {
	for _, s := range []string{
		"", "delay_risk", `q"uote\back\slash`, "\b\f\n\r\t\x00\x01\x1f\x7f", "<script>&amp;</script>",
		"é€😀\ufffd", "line\u2028para\u2029", "invalid \xff\xfe", "cut \xe2\x82", "overlong \xc0\xaf", "surrogate \xed\xa0\x80",
		"\x80leading continuation", "tail \xf0\x9f\x98",
	} {
		checkMatchesMarshal(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"freight-delay-risk", "m\"odel\\x<&>\t\n", "bad \xff utf8 \u2028"} {
		f.Add(s)
	}
	f.Fuzz(checkMatchesMarshal)
}

func TestAppendValidUTF8(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"valid passes as it is":  {`{"ref":"é€"}`, `{"ref":"é€"}`},
		"invalid bytes replaced": {"{\"ref\":\"MSKU\xff\xfe\"}", `{"ref":"MSKU\ufffd\ufffd"}`},
		"cut sequence in a key":  {"{\"r\xe2\x82\":1}", `{"r\ufffd\ufffd":1}`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := AppendValidUTF8([]byte("x"), []byte(c.in))
			if string(got) != "x"+c.want {
				t.Errorf("got %s, want x%s", got, c.want)
			}
			if !json.Valid(got[1:]) {
				t.Errorf("%s is not JSON", got[1:])
			}
		})
	}
}
