package transform

import (
	"errors"
	"fmt"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"

	"github.com/freightcast/freightcast/internal/jsonscan"
)

// maxDepth bounds the nesting of a shipment read for the transforms (ingestion refuses deeper
// ones before).
const maxDepth = 64

// Event is the raw event the transforms read, bound once and evaluated by every transform. It
// is reused from one event to the next; it is not safe for concurrent use.
type Event struct {
	act  activation
	scan jsonscan.Scanner
}

// activation resolves `event` and nothing else, without the map lookup and the allocation of
// cel-go's map activation.
type activation struct{ event any }

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return a.event, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Bind makes ev the event with id and the shipment JSON (nil when the event has none): what
// the next Evals read.
func (ev *Event) Bind(id string, shipment []byte) error {
	// A new map each time: a result may still reference the previous event's values.
	root := make(map[string]any, 2)
	root["id"] = id
	if shipment != nil {
		ev.scan.Reset(shipment)
		v, err := ev.value(0)
		if err != nil {
			return fmt.Errorf("shipment: %w", err)
		}
		root["shipment"] = v
	}
	ev.act.event = types.NewStringInterfaceMap(types.DefaultTypeAdapter, root)
	return nil
}

// value reads the JSON value at the scanner as CEL reads JSON: objects as maps, arrays as
// lists, numbers as doubles.
func (ev *Event) value(depth int) (any, error) {
	p := &ev.scan
	p.SkipSpace()
	if depth > maxDepth {
		return nil, fmt.Errorf("nests deeper than %d levels", maxDepth)
	}
	switch c := p.Peek(); {
	case c == '{':
		m := map[string]any{}
		err := p.Object(func(key []byte) error {
			v, err := ev.value(depth + 1)
			if err != nil {
				return err
			}
			m[string(key)] = v
			return nil
		})
		return m, err
	case c == '[':
		var l []any
		err := p.Array(func() error {
			v, err := ev.value(depth + 1)
			if err != nil {
				return err
			}
			l = append(l, v)
			return nil
		})
		if l == nil {
			l = []any{}
		}
		return l, err
	case c == '"':
		s, err := p.String()
		return string(s), err
	case c == 't' && p.Literal("true"):
		return true, nil
	case c == 'f' && p.Literal("false"):
		return false, nil
	case c == 'n' && p.Literal("null"):
		return types.NullValue, nil
	case c == '-' || c >= '0' && c <= '9':
		return p.Number()
	case p.EOF():
		return nil, errors.New("ends where a value should be")
	}
	return nil, fmt.Errorf("invalid JSON at byte %d", p.Pos())
}
