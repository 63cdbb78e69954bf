package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/freightcast/freightcast/internal/jsonenc"
)

// Features are the feature values a model was given for an event, by name in model order: what
// a prediction record keeps when the pipeline's spec.output.recordInputs is set, for audits and
// for training the next model. Their JSON is an object in that order.
type Features struct {
	Names  []string
	Values []Value
}

// appendJSON appends the object; the values must be finite (the queue message's were).
func (f Features) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, name := range f.Names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(dst, name)
		dst = append(dst, ':')
		dst = f.Values[i].AppendJSON(dst)
	}
	return append(dst, '}')
}

// MarshalJSON writes the object in model order.
func (f Features) MarshalJSON() ([]byte, error) {
	if len(f.Names) != len(f.Values) {
		return nil, fmt.Errorf("features: %d names for %d values", len(f.Names), len(f.Values))
	}
	return f.appendJSON(nil), nil
}

// UnmarshalJSON reads the object, keeping its order.
func (f *Features) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("features: not an object")
	}
	f.Names, f.Values = nil, nil
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("features: %w", err)
		}
		var v Value
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("features.%v: %w", t, err)
		}
		f.Names = append(f.Names, t.(string))
		f.Values = append(f.Values, v)
	}
	_, err := dec.Token()
	return err
}
