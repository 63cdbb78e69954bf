package event

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// AppendPrediction appends the record of p to dst, the same JSON that EncodePrediction writes
// (version set, outputs in name order), without reflection: a worker writes one record per
// event, and encoding/json's map and reflection costs showed in its profile. It checks what
// the model produced (finite outputs) and trusts the rest, which the worker took from an event
// that Decode validated.
func AppendPrediction(dst []byte, p *Prediction) ([]byte, error) {
	dst = append(dst, `{"v":1,"id":"`...)
	dst = append(dst, p.ID...) // ValidID's charset needs no escaping.
	dst = append(dst, `","model":`...)
	dst = appendJSONString(dst, p.Model)
	dst = append(dst, `,"modelVersion":`...)
	dst = appendJSONString(dst, p.ModelVersion)
	dst = append(dst, `,"outputs":{`...)
	names := make([]string, 0, len(p.Outputs))
	for name := range p.Outputs {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, name)
		dst = append(dst, ":["...)
		for j, v := range p.Outputs[name] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return dst, fmt.Errorf("prediction: outputs.%s[%d] is %v, not a finite number", name, j, v)
			}
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendFloat(dst, v)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')
	if len(p.Shipment) > 0 {
		dst = append(dst, `,"shipment":`...)
		dst = append(dst, p.Shipment...)
	}
	dst = append(dst, `,"receivedAt":"`...)
	dst = p.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","predictedAt":"`...)
	dst = p.PredictedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...), nil
}

// appendJSONString appends s as a JSON string, escaping what JSON requires.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '<' || c == '>' || c == '&':
			// encoding/json escapes these for HTML safety; match it byte for byte.
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
