package oip

import (
	"math"
	"strconv"

	"github.com/freightcast/freightcast/internal/jsonenc"
)

// encodeResponse appends the infer response for c to b.
func (s *Server) encodeResponse(b []byte, c *call, lm *loadedModel) ([]byte, error) {
	b = s.appendResponseHead(b, c)
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
		b = jsonenc.AppendString(b, mo.Name)
		b = append(b, `,"datatype":"FP32","shape":[`...)
		b = strconv.AppendInt(b, int64(c.rows), 10)
		for _, d := range mo.Shape[1:] {
			b = append(b, ',')
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data":[`...)
		for i, v := range c.out[j] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return b, nonFinite(mo.Name, i, float64(v))
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

// appendResponseHead appends the response up to the opening bracket of its outputs.
func (s *Server) appendResponseHead(b []byte, c *call) []byte {
	b = append(b, `{"model_name":`...)
	b = jsonenc.AppendString(b, s.cfg.ModelName)
	b = append(b, `,"model_version":`...)
	b = jsonenc.AppendString(b, s.cfg.ModelVersion)
	if len(c.req.id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, c.req.id...) // a JSON string token as the client sent it
	}
	return append(b, `,"outputs":[`...)
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
