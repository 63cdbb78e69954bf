package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/freightcast/freightcast/internal/event"
)

// A hand-written parser for the one event shape rather than encoding/json: it reads a feature
// value straight into its slot in model order (no map per event, no reflection), names the exact
// field that is wrong, and refuses what encoding/json would quietly accept (duplicate keys,
// strings where numbers belong, numbers out of float64 range). FuzzDecodeEvents checks it against
// encoding/json.

// maxShipmentDepth bounds the nesting of a shipment, so a hostile body cannot make the
// validation of the opaque part recurse deeply.
const maxShipmentDepth = 64

// eventError is a 400: what is wrong, in which event (index, -1 for the body as a whole) and
// which field.
type eventError struct {
	index int
	field string
	msg   string
}

func (e *eventError) Error() string {
	if e.field != "" {
		return fmt.Sprintf("event %d: %s: %s", e.index, e.field, e.msg)
	}
	return fmt.Sprintf("event %d: %s", e.index, e.msg)
}

// batch holds the events of one body, parsed and validated, in body order. Its slices are
// reused from one request to the next; shipments alias the request's body buffer.
type batch struct {
	ids       []string
	values    []float64 // len(ids) × len(features), model order within each event
	shipments [][]byte
}

func (b *batch) reset() {
	b.ids = b.ids[:0]
	b.values = b.values[:0]
	clear(b.shipments) // let the old body go
	b.shipments = b.shipments[:0]
}

func (b *batch) len() int { return len(b.ids) }

// decoder parses request bodies for one model's feature names. It is immutable and shared.
type decoder struct {
	features []string
	index    map[string]int
}

func newDecoder(features []string) (*decoder, error) {
	d := &decoder{features: features, index: make(map[string]int, len(features))}
	for i, f := range features {
		if f == "" {
			return nil, fmt.Errorf("feature %d has an empty name", i)
		}
		if _, dup := d.index[f]; dup {
			return nil, fmt.Errorf("feature %q is declared twice", f)
		}
		d.index[f] = i
	}
	return d, nil
}

// decodeJSON parses an application/json body: one event object or an array of them.
func (d *decoder) decodeJSON(body []byte, b *batch, seen []bool) error {
	p := parser{data: body}
	p.skipSpace()
	switch p.peek() {
	case '{':
		if err := d.parseEvent(&p, 0, b, seen); err != nil {
			return err
		}
	case '[':
		n := 0
		err := p.elements(-1, func() error {
			if p.peek() != '{' {
				return p.syntaxError(n, "an event object")
			}
			n++
			return d.parseEvent(&p, n-1, b, seen)
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return &eventError{index: -1, msg: "the array holds no events"}
		}
	default:
		if p.eof() {
			return &eventError{index: -1, msg: "the body is empty"}
		}
		return p.syntaxError(-1, "an event object or an array of them")
	}
	p.skipSpace()
	if !p.eof() {
		return p.syntaxError(-1, "the end of the body")
	}
	return nil
}

// decodeNDJSON parses an application/x-ndjson body: one event object per line. Blank lines are
// skipped but counted, so an error's index is the 0-based line number.
func (d *decoder) decodeNDJSON(body []byte, b *batch, seen []bool) error {
	for line := 0; len(body) > 0; line++ {
		end := bytes.IndexByte(body, '\n')
		var text []byte
		if end < 0 {
			text, body = body, nil
		} else {
			text, body = body[:end], body[end+1:]
		}
		p := parser{data: text}
		p.skipSpace()
		if p.eof() {
			continue
		}
		if p.peek() != '{' {
			return p.syntaxError(line, "an event object")
		}
		if err := d.parseEvent(&p, line, b, seen); err != nil {
			return err
		}
		p.skipSpace()
		if !p.eof() {
			return p.syntaxError(line, "the end of the line after the event")
		}
	}
	if b.len() == 0 {
		return &eventError{index: -1, msg: "the body holds no events"}
	}
	return nil
}

// parseEvent parses the object at p (which is at '{') and appends it to b. seen has one flag
// per feature and is scratch space.
func (d *decoder) parseEvent(p *parser, index int, b *batch, seen []bool) error {
	var (
		id                         string
		haveID, haveFeat, haveShip bool
		shipment                   []byte
	)
	base := len(b.values)
	b.values = append(b.values, make([]float64, len(d.features))...)
	vals := b.values[base:]
	clear(seen)
	fail := func(field, format string, args ...any) error {
		return &eventError{index: index, field: field, msg: fmt.Sprintf(format, args...)}
	}

	err := p.members(index, func(key []byte) error {
		switch string(key) {
		case "id":
			if haveID {
				return fail("id", "given twice")
			}
			haveID = true
			if p.peek() != '"' {
				return fail("id", "must be a string")
			}
			raw, err := p.parseString(index)
			if err != nil {
				return err
			}
			if problem := event.IDProblem(string(raw)); problem != "" {
				return fail("id", "%s", problem)
			}
			id = string(raw)
		case "features":
			if haveFeat {
				return fail("features", "given twice")
			}
			haveFeat = true
			return d.parseFeatures(p, index, vals, seen)
		case "shipment":
			if haveShip {
				return fail("shipment", "given twice")
			}
			haveShip = true
			start := p.pos
			if err := p.skipValue(index, 0); err != nil {
				return err
			}
			raw := p.data[start:p.pos]
			if len(raw) > event.MaxShipmentBytes {
				return fail("shipment", "is %d bytes, the limit is %d", len(raw), event.MaxShipmentBytes)
			}
			if string(raw) != "null" {
				shipment = raw
			}
		default:
			return fail(fieldName(key), "unknown field; an event has id, features and shipment")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveID {
		return fail("id", "missing")
	}
	if !haveFeat && len(d.features) > 0 {
		return fail("features", "missing")
	}
	for i, ok := range seen {
		if !ok {
			return fail("features."+d.features[i], "missing; the model needs every feature")
		}
	}
	b.ids = append(b.ids, id)
	b.shipments = append(b.shipments, shipment)
	return nil
}

// parseFeatures reads the features object into vals, in model order.
func (d *decoder) parseFeatures(p *parser, index int, vals []float64, seen []bool) error {
	if p.peek() != '{' {
		return &eventError{index: index, field: "features", msg: "must be an object of feature name to number"}
	}
	return p.members(index, func(name []byte) error {
		// The map lookup with string(name) does not allocate.
		i, known := d.index[string(name)]
		if !known {
			return &eventError{index: index, field: "features." + fieldName(name), msg: "unknown feature; the model has no such input"}
		}
		if seen[i] {
			return &eventError{index: index, field: "features." + d.features[i], msg: "given twice"}
		}
		v, err := p.parseNumber()
		if err != nil {
			return &eventError{index: index, field: "features." + d.features[i], msg: err.Error()}
		}
		vals[i], seen[i] = v, true
		return nil
	})
}

// fieldName makes a client's key printable in an error without letting it run long.
func fieldName(key []byte) string {
	const limit = 64
	s := string(key)
	if !utf8.ValidString(s) {
		s = strconv.Quote(s)
	}
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// parser is a cursor over JSON text.
type parser struct {
	data []byte
	pos  int
	buf  []byte // unescaped strings
}

func (p *parser) eof() bool { return p.pos >= len(p.data) }

func (p *parser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

// The scanning loops below work on locals, not p's fields: the compiler then keeps the cursor in
// a register and drops the bounds checks, which more than doubles the parser's speed.

func (p *parser) skipSpace() {
	data, i := p.data, p.pos
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	p.pos = i
}

func (p *parser) syntaxError(index int, want string) error {
	if p.eof() {
		return &eventError{index: index, msg: fmt.Sprintf("invalid JSON: the input ends where %s should be", want)}
	}
	return &eventError{index: index, msg: fmt.Sprintf("invalid JSON at byte %d: found %q where %s should be", p.pos, p.data[p.pos], want)}
}

// parseString reads the string at p and returns its unescaped bytes, which are valid until the
// next call (they may alias the input or p.buf).
func (p *parser) parseString(index int) ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.syntaxError(index, "a string")
	}
	start := p.pos + 1
	data := p.data
	// Fast path: no escapes, the common case for ids and feature names.
	for i := start; i < len(data); i++ {
		c := data[i]
		if c != '"' && c != '\\' && c >= 0x20 {
			continue
		}
		p.pos = i
		switch {
		case c == '"':
			p.pos++
			return data[start:i], nil
		case c == '\\':
			return p.parseEscaped(index, start)
		default:
			return nil, p.syntaxError(index, "no control character inside a string")
		}
	}
	p.pos = len(data)
	return nil, p.syntaxError(index, "the closing '\"' of a string")
}

func (p *parser) parseEscaped(index, start int) ([]byte, error) {
	p.buf = append(p.buf[:0], p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return p.buf, nil
		case c < 0x20:
			return nil, p.syntaxError(index, "no control character inside a string")
		case c != '\\':
			p.buf = append(p.buf, c)
			p.pos++
			continue
		}
		p.pos++ // '\\'
		if p.eof() {
			break
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			p.buf = append(p.buf, e)
		case 'b':
			p.buf = append(p.buf, '\b')
		case 'f':
			p.buf = append(p.buf, '\f')
		case 'n':
			p.buf = append(p.buf, '\n')
		case 'r':
			p.buf = append(p.buf, '\r')
		case 't':
			p.buf = append(p.buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.syntaxError(index, "four hex digits after \\u")
			}
			if utf16.IsSurrogate(r) {
				// A pair decodes to one rune; a lone half becomes U+FFFD, as in encoding/json.
				save := p.pos
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					p.pos += 2
					if r2, ok := p.hex4(); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							p.buf = utf8.AppendRune(p.buf, dec)
							continue
						}
					}
				}
				p.pos = save
				r = utf8.RuneError
			}
			p.buf = utf8.AppendRune(p.buf, r)
		default:
			p.pos--
			return nil, p.syntaxError(index, "a valid escape after '\\'")
		}
	}
	return nil, p.syntaxError(index, "the closing '\"' of a string")
}

func (p *parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.pos += 4
	return r, true
}

// parseNumber reads a JSON number as a finite float64. Its errors are the field's message.
func (p *parser) parseNumber() (float64, error) {
	start := p.pos
	switch c := p.peek(); {
	case c == '"':
		return 0, fmt.Errorf("is a string; features are JSON numbers (NaN and Infinity are not accepted)")
	case c == 'n':
		return 0, fmt.Errorf("is null; every feature needs a number")
	case c != '-' && (c < '0' || c > '9'):
		return 0, fmt.Errorf("is not a number")
	}
	if msg := p.scanNumber(); msg != "" {
		return 0, errors.New(msg)
	}
	text := p.data[start:p.pos]
	// string(text) in the call does not escape, so it does not allocate.
	v, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is out of the float64 range", text)
	}
	return v, nil
}

// scanNumber moves past a JSON number and returns what is wrong with it, or "".
func (p *parser) scanNumber() string {
	if p.peek() == '-' {
		p.pos++
	}
	switch c := p.peek(); {
	case c == '0':
		p.pos++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return "is not a valid JSON number"
	}
	if p.peek() == '.' {
		p.pos++
		if n := p.digits(); n == 0 {
			return "is not a valid JSON number: no digit after '.'"
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if n := p.digits(); n == 0 {
			return "is not a valid JSON number: no digit in the exponent"
		}
	}
	return ""
}

func (p *parser) digits() int {
	data, i := p.data, p.pos
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	n := i - p.pos
	p.pos = i
	return n
}

// members walks the object at p (which is at '{'): for each member it reads the key and the
// ':' and calls fn with the key and p at the value, which fn must consume.
func (p *parser) members(index int, fn func(key []byte) error) error {
	p.pos++ // '{'
	p.skipSpace()
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		key, err := p.parseString(index)
		if err != nil {
			return err
		}
		p.skipSpace()
		if p.peek() != ':' {
			return p.syntaxError(index, "':' after a key")
		}
		p.pos++
		p.skipSpace()
		if err := fn(key); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return p.syntaxError(index, "',' or '}' in an object")
		}
	}
}

// elements walks the array at p (which is at '['), calling fn with p at each element, which fn
// must consume.
func (p *parser) elements(index int, fn func() error) error {
	p.pos++ // '['
	p.skipSpace()
	if p.peek() == ']' {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		if err := fn(); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.syntaxError(index, "',' or ']' in an array")
		}
	}
}

// skipValue moves past one JSON value, checking that it is valid, down to maxShipmentDepth.
func (p *parser) skipValue(index, depth int) error {
	if depth > maxShipmentDepth {
		return &eventError{index: index, field: "shipment", msg: fmt.Sprintf("nests deeper than %d levels", maxShipmentDepth)}
	}
	switch c := p.peek(); {
	case c == '"':
		_, err := p.parseString(index)
		return err
	case c == '{':
		return p.members(index, func([]byte) error { return p.skipValue(index, depth+1) })
	case c == '[':
		return p.elements(index, func() error { return p.skipValue(index, depth+1) })
	case c == '-' || c >= '0' && c <= '9':
		// Any valid JSON number, even one beyond float64: the shipment is not ours to read.
		if msg := p.scanNumber(); msg != "" {
			return &eventError{index: index, field: "shipment", msg: "holds a number that " + msg}
		}
		return nil
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(p.data[p.pos:], []byte(lit)) {
				p.pos += len(lit)
				return nil
			}
		}
		return p.syntaxError(index, "a JSON value")
	}
}
