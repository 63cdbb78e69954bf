package oip

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// encodeResponse appends the infer response for c to b.
func (s *Server) encodeResponse(b []byte, c *call, lm *loadedModel) ([]byte, error) {
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, s.cfg.ModelName)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, s.cfg.ModelVersion)
	if len(c.req.id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, c.req.id...) // a JSON string token as the client sent it
	}
	b = append(b, `,"outputs":[`...)
	first := true
	for j, mo := range lm.meta.Outputs {
		if !wanted(c.req.outputs, mo.Name) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"name":`...)
		b = appendJSONString(b, mo.Name)
		b = append(b, `,"datatype":"FP32","shape":[`...)
		b = strconv.AppendInt(b, int64(c.rows), 10)
		for _, d := range mo.Shape[1:] {
			b = append(b, ',')
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data":[`...)
		for i, v := range c.out[j] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return b, fmt.Errorf("output %q value %d is %v: the inputs are outside what the model can compute", mo.Name, i, v)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...), nil
}

func wanted(names [][]byte, name string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if string(n) == name {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
