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
//
// A JSON object is bound as a map[string]any whose values are CEL values (nested objects as
// maps again): cel-go selects a field of such a map with one string-keyed lookup, where a CEL
// map costs an interface-keyed lookup and two more allocations per object; an object an
// expression uses whole is wrapped by cel-go as a CEL map with the same keys and values. The
// maps and the lists' elements are reused by the next Bind: no result outlives an Eval (Eval
// converts it to an event.Value), so nothing can see them change.
type Event struct {
	act  activation
	scan jsonscan.Scanner
	// keys interns the object keys of the events bound so far: the events of a pipeline share
	// their field names, and a key converted once is a string and a CEL value never allocated
	// again. Bounded, so that clients inventing keys cannot grow it.
	keys interned
	// values interns short string values the same way: modes, carriers, ports, codes recur.
	values interned
	// objects are the maps of the events bound before, objects[:used] those of this one.
	objects []map[string]any
	used    int
	// stack holds the elements of the lists being read; lists the finished lists' elements.
	stack, lists []ref.Val
}

// interned maps text to its CEL string, up to maxInterned of them.
type interned map[string]ref.Val

// maxInterned bounds each of Event's interning maps; maxInternedValue the strings values interns.
const (
	maxInterned      = 4096
	maxInternedValue = 64
)

// Bounds on what an Event keeps for the next one: the maps (pooled) and their sizes (one that
// grew larger is dropped, as clearing it would cost its size at every reuse), and the lists'
// elements.
const (
	maxPooledObjects  = 64
	maxPooledKeys     = 32
	maxPooledElements = 1024
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
	if name == "event" && a.event != nil {
		return a.event, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Bind makes ev the event with id and the shipment JSON (nil when the event has none): what
// the next Evals read. The JSON is converted to CEL values once, so that the transforms do not
// convert a field each time they read it. After an error, ev has no event until the next Bind.
func (ev *Event) Bind(id string, shipment []byte) error {
	ev.act.event = nil
	ev.used = 0
	if cap(ev.lists) > maxPooledElements {
		ev.lists = nil
	}
	ev.lists = ev.lists[:0]
	ev.stack = ev.stack[:0]
	root := ev.object()
	root["id"] = types.String(id)
	if shipment != nil {
		ev.scan.Reset(shipment)
		v, err := ev.value(0)
		if err != nil {
			return fmt.Errorf("shipment: %w", err)
		}
		root["shipment"] = v
	}
	ev.act.event = root
	return nil
}

// object is an empty map for an object of this event, one of the previous events' when it can.
func (ev *Event) object() map[string]any {
	if ev.used < len(ev.objects) {
		m := ev.objects[ev.used]
		if len(m) > maxPooledKeys {
			m = make(map[string]any, 8)
			ev.objects[ev.used] = m
		} else {
			clear(m)
		}
		ev.used++
		return m
	}
	m := make(map[string]any, 8)
	if len(ev.objects) < maxPooledObjects {
		ev.objects = append(ev.objects, m)
		ev.used++
	}
	return m
}

// value reads the JSON value at the scanner as CEL reads JSON: objects as maps, arrays as
// lists, numbers as doubles. An object is a map[string]any, anything else a ref.Val.
func (ev *Event) value(depth int) (any, error) {
	p := &ev.scan
	p.SkipSpace()
	if depth > maxDepth {
		return nil, fmt.Errorf("nests deeper than %d levels", maxDepth)
	}
	switch c := p.Peek(); {
	case c == '{':
		m := ev.object()
		err := p.Object(func(key []byte) error {
			k := ev.keys.get(key).(types.String)
			v, err := ev.value(depth + 1)
			if err != nil {
				return err
			}
			m[string(k)] = v
			return nil
		})
		return m, err
	case c == '[':
		start := len(ev.stack)
		err := p.Array(func() error {
			v, err := ev.value(depth + 1)
			if err != nil {
				return err
			}
			if m, ok := v.(map[string]any); ok {
				v = types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
			}
			ev.stack = append(ev.stack, v.(ref.Val))
			return nil
		})
		if err != nil {
			return nil, err
		}
		return types.NewRefValList(types.DefaultTypeAdapter, ev.list(start)), nil
	}
	return ev.scalar()
}

// scalar reads the string, number, bool or null at the scanner.
func (ev *Event) scalar() (ref.Val, error) {
	p := &ev.scan
	switch c := p.Peek(); {
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

// list moves the elements stacked from start into the lists' storage, and returns them.
func (ev *Event) list(start int) []ref.Val {
	elems := ev.stack[start:]
	n := len(elems)
	if cap(ev.lists)-len(ev.lists) < n {
		// A new block: the lists of this event already in the old one keep it.
		ev.lists = make([]ref.Val, 0, max(2*cap(ev.lists), n, 16))
	}
	l := ev.lists[len(ev.lists) : len(ev.lists)+n : len(ev.lists)+n]
	copy(l, elems)
	ev.lists = ev.lists[:len(ev.lists)+n]
	clear(elems)
	ev.stack = ev.stack[:start]
	return l
}
