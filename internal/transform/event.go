package transform

import (
	"errors"
	"fmt"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
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
	// keys interns the object keys of the events bound so far: the events of a pipeline share
	// their field names, and a key converted once is a string and a CEL value never allocated
	// again. Bounded, so that clients inventing keys cannot grow it.
	keys interned
	// values interns short string values the same way: modes, carriers, ports, codes recur.
	values interned
}

// interned maps text to its CEL string, up to maxInterned of them.
type interned map[string]ref.Val

// maxInterned bounds each of Event's interning maps; maxInternedValue the strings values interns.
const (
	maxInterned      = 4096
	maxInternedValue = 64
)

// get is the CEL string of raw, the same value each time while the map has room.
func (m *interned) get(raw []byte) ref.Val {
	if k, ok := (*m)[string(raw)]; ok { // no allocation for the lookup
		return k
	}
	k := types.String(raw)
	if *m == nil {
		*m = interned{}
	}
	if len(*m) < maxInterned {
		(*m)[string(k)] = k
	}
	return k
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
// the next Evals read. The JSON is converted to CEL values once, so that the transforms do not
// convert a field each time they read it.
func (ev *Event) Bind(id string, shipment []byte) error {
	// A new map each time: a result may still reference the previous event's values.
	root := make(map[ref.Val]ref.Val, 2)
	root[types.String("id")] = types.String(id)
	if shipment != nil {
		ev.scan.Reset(shipment)
		v, err := ev.value(0)
		if err != nil {
			return fmt.Errorf("shipment: %w", err)
		}
		root[types.String("shipment")] = v
	}
	ev.act.event = types.NewRefValMap(types.DefaultTypeAdapter, root)
	return nil
}

// value reads the JSON value at the scanner as CEL reads JSON: objects as maps, arrays as
// lists, numbers as doubles.
func (ev *Event) value(depth int) (ref.Val, error) {
	p := &ev.scan
	p.SkipSpace()
	if depth > maxDepth {
		return nil, fmt.Errorf("nests deeper than %d levels", maxDepth)
	}
	switch c := p.Peek(); {
	case c == '{':
		m := map[ref.Val]ref.Val{}
		err := p.Object(func(key []byte) error {
			k := ev.keys.get(key)
			v, err := ev.value(depth + 1)
			if err != nil {
				return err
			}
			m[k] = v
			return nil
		})
		return types.NewRefValMap(types.DefaultTypeAdapter, m), err
	case c == '[':
		var l []ref.Val
		err := p.Array(func() error {
			v, err := ev.value(depth + 1)
			if err != nil {
				return err
			}
			l = append(l, v)
			return nil
		})
		return types.NewRefValList(types.DefaultTypeAdapter, l), err
	case c == '"':
		s, err := p.String()
		if err != nil {
			return nil, err
		}
		if len(s) <= maxInternedValue {
			return ev.values.get(s), nil
		}
		return types.String(s), nil
	case c == 't' && p.Literal("true"):
		return types.True, nil
	case c == 'f' && p.Literal("false"):
		return types.False, nil
	case c == 'n' && p.Literal("null"):
		return types.NullValue, nil
	case c == '-' || c >= '0' && c <= '9':
		f, err := p.Number()
		return types.Double(f), err
	case p.EOF():
		return nil, errors.New("ends where a value should be")
	}
	return nil, fmt.Errorf("invalid JSON at byte %d", p.Pos())
}
