package event

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/freightcast/freightcast/internal/jsonscan"
)

// maxShipmentDepth bounds the nesting of a shipment a worker reads; ingestion refuses deeper ones.
const maxShipmentDepth = 64

// Decoder reads queue messages without allocating: the worker decodes every event it scores, and
// encoding/json's reflection and its slice per message cost more than the rest of the decode.
// A Decoder is not safe for concurrent use; each worker owns one.
type Decoder struct {
	scan jsonscan.Scanner
}

// DecodeInto parses and validates a queue message into e, as Decode does, reusing
// e.Features' capacity. e.ID and e.Shipment point into data, which must not change while e is
// used (a NATS message's data is its own and never written again). A message with bytes that are
// not UTF-8, which ingestion refuses today but older releases queued, and a message of typed
// values (TypedVersion), which only models with typed inputs receive, go through Decode.
func (d *Decoder) DecodeInto(data []byte, e *Event) error {
	features := e.Features[:0]
	*e = Event{}
	var seen struct{ v, id, features, receivedAt, typed bool }
	s := &d.scan
	s.Reset(data)
	s.SkipSpace()
	err := s.Object(func(key []byte) error {
		switch string(key) {
		case "v":
			from := s.Pos()
			n, err := s.Number()
			if err != nil {
				return err
			}
			if string(data[from:s.Pos()]) != "1" {
				seen.typed = true
				return fmt.Errorf("format version %v", n) // Decode says whether it reads it
			}
			seen.v = true
		case "id":
			from := s.Pos()
			id, err := s.String()
			switch {
			case err != nil:
				return err
			case s.Pos()-from != len(id)+2:
				// Unescaped into the scanner's buffer, which the next string overwrites.
				e.ID = string(id)
			case len(id) > 0:
				// A slice of the message, whose bytes outlive the event and never change.
				e.ID = unsafe.String(&id[0], len(id))
			}
			seen.id = true
		case "features":
			features = features[:0]
			err := s.Array(func() error {
				f, err := s.Number()
				features = append(features, f)
				return err
			})
			if err != nil {
				return err
			}
			seen.features = true
		case "shipment":
			from := s.Pos()
			if err := s.Skip(maxShipmentDepth, jsonscan.AnyNumber); err != nil {
				return err
			}
			if raw := data[from:s.Pos()]; string(raw) != "null" {
				e.Shipment = raw
			}
		case "receivedAt":
			text, err := s.String()
			if err != nil {
				return err
			}
			// The strict RFC 3339 of encoding/json, which Decode uses.
			if err := e.ReceivedAt.UnmarshalText(text); err != nil {
				return fmt.Errorf("receivedAt: %w", err)
			}
			seen.receivedAt = true
		default:
			return fmt.Errorf("unknown field %q", key)
		}
		return nil
	})
	if err == nil {
		s.SkipSpace()
		if !s.EOF() {
			err = errors.New("data after the message object")
		}
	}
	if seen.typed || notUTF8(err) {
		slow, err := Decode(data)
		*e = slow
		return err
	}
	e.Features = features
	switch {
	case err != nil:
		return fmt.Errorf("event: %w", err)
	case !seen.v:
		return fmt.Errorf("event: format version 0, this build reads %d", Version)
	case !seen.features:
		return errors.New("event: features missing")
	case !seen.receivedAt || e.ReceivedAt.IsZero():
		return errors.New("event: receivedAt missing")
	}
	if err := e.validateDecoded(); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// notUTF8 tells whether err is the scanner finding bytes that are not UTF-8.
func notUTF8(err error) bool {
	if err == nil {
		return false // before errors.As, whose target would otherwise cost every message an allocation
	}
	var scanErr *jsonscan.Error
	return errors.As(err, &scanErr) && scanErr.Kind == jsonscan.InvalidUTF8
}
