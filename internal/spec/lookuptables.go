package spec

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/jsonscan"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// MaxLookupTableEntries bounds a lookup table kept in a ConfigMap as spec.lookupTables[].values
// is bounded inline: every ingestion pod holds every table in memory.
const MaxLookupTableEntries = 4096

// ErrInvalidLookupTable marks what only an edit can fix (a ConfigMap that is missing, a key it
// lacks, a value that is not a number, a table too large), as opposed to a failed read of the
// API, which a retry may fix.
var ErrInvalidLookupTable = errors.New("invalid lookup table")

// ConfigMapData reads the data of the ConfigMap name in the pipeline's namespace: found is false
// when there is no such ConfigMap; err is a failed read.
type ConfigMapData func(name string) (data map[string]string, found bool, err error)

// ResolvedTransforms are pipeline p's transforms with the tables of spec.lookupTables[].configMapRef
// read through get (Transforms leaves them empty: the webhook checks expressions without them).
// An error wrapping ErrInvalidLookupTable names the table, the ConfigMap and the key.
func ResolvedTransforms(p *freightcastv1alpha1.FreightPipeline, get ConfigMapData) (pipelineconfig.Transforms, error) {
	t := Transforms(p)
	var errs []error
	for i, l := range p.Spec.LookupTables {
		ref := l.ConfigMapRef
		if ref == nil {
			continue
		}
		data, found, err := get(ref.Name)
		if err != nil {
			return t, fmt.Errorf("lookup table %q: reading ConfigMap %s: %w", l.Name, ref.Name, err)
		}
		if !found {
			errs = append(errs, fmt.Errorf("%w: table %q: ConfigMap %s does not exist", ErrInvalidLookupTable, l.Name, ref.Name))
			continue
		}
		values, err := configMapTable(data, ref.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: table %q: ConfigMap %s: %w", ErrInvalidLookupTable, l.Name, ref.Name, err))
			continue
		}
		t.Tables[i].Values = values
	}
	return t, errors.Join(errs...)
}

// configMapTable is the table a ConfigMap's data holds: every entry when key is empty, else the
// JSON object of entry key. Each value is checked here, so that the error names the ConfigMap's
// key rather than only the table's.
func configMapTable(data map[string]string, key string) (map[string]string, error) {
	if key != "" {
		text, ok := data[key]
		if !ok {
			return nil, fmt.Errorf("it has no key %q", key)
		}
		values, err := jsonTable(text)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		return values, nil
	}
	if len(data) > MaxLookupTableEntries {
		return nil, fmt.Errorf("it has %d entries; a table holds at most %d", len(data), MaxLookupTableEntries)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad value named is the same on every reconcile
	values := make(map[string]string, len(data))
	for _, k := range keys {
		v := strings.TrimSpace(data[k])
		if _, err := finite(v); err != nil {
			return nil, fmt.Errorf("key %q: the value %q is not a finite number", k, truncate(v))
		}
		values[k] = v
	}
	return values, nil
}

// jsonTable parses a table written as a JSON object of finite numbers, strictly: a key given twice
// is refused rather than one of its values silently kept.
func jsonTable(text string) (map[string]string, error) {
	var s jsonscan.Scanner
	s.Reset([]byte(text))
	s.SkipSpace()
	values := map[string]string{}
	var entryErr error // what is wrong with an entry, said without the JSON grammar's words
	err := s.Object(func(k []byte) error {
		key := string(k)
		if _, dup := values[key]; dup {
			entryErr = fmt.Errorf("the table's key %q is given twice", key)
			return entryErr
		}
		if len(values) == MaxLookupTableEntries {
			entryErr = fmt.Errorf("more than %d entries", MaxLookupTableEntries)
			return entryErr
		}
		// Number refuses what overflows float64, so what it returns is finite.
		f, err := s.Number()
		if err != nil {
			entryErr = fmt.Errorf("the value of %q is not a number: %w", key, err)
			return entryErr
		}
		values[key] = strconv.FormatFloat(f, 'g', -1, 64)
		return nil
	})
	switch {
	case entryErr != nil:
		return nil, entryErr
	case err != nil:
		return nil, fmt.Errorf("not a JSON object of numbers: %w", err)
	}
	s.SkipSpace()
	if !s.EOF() {
		return nil, fmt.Errorf("not a JSON object of numbers: text follows the object at offset %d", s.Pos())
	}
	return values, nil
}

func finite(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = errors.New("not finite")
	}
	return f, err
}

// truncate keeps an error readable when a value is a whole file.
func truncate(v string) string {
	if len(v) > 64 {
		return v[:64] + "…"
	}
	return v
}
