package spec

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

func TestResolvedTransformsReadsConfigMaps(t *testing.T) {
	p := &freightcastv1alpha1.FreightPipeline{Spec: freightcastv1alpha1.FreightPipelineSpec{LookupTables: []freightcastv1alpha1.LookupTable{
		{Name: "inline", Values: map[string]string{"a": "1"}},
		{Name: "entries", ConfigMapRef: &freightcastv1alpha1.LookupTableConfigMapRef{Name: "entries"}},
		{Name: "json", ConfigMapRef: &freightcastv1alpha1.LookupTableConfigMapRef{Name: "json", Key: "t.json"}},
	}}}
	data := map[string]map[string]string{
		"entries": {"NLRTM": " 0.82 ", "CNSHA": "1e-1"},
		"json":    {"t.json": ` {"DHL Freight": 0.94, "x": -2} `, "other": "ignored"},
	}
	get := func(name string) (map[string]string, bool, error) { d, ok := data[name]; return d, ok, nil }
	tr, err := ResolvedTransforms(p, get)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Tables[0].Values["a"] != "1" || tr.Tables[1].Values["NLRTM"] != "0.82" || tr.Tables[1].Values["CNSHA"] != "1e-1" ||
		tr.Tables[2].Values["DHL Freight"] != "0.94" || tr.Tables[2].Values["x"] != "-2" || len(tr.Tables[2].Values) != 2 {
		t.Errorf("tables %+v", tr.Tables)
	}
	if err := CheckResolvedTransforms(tr, nil); err != nil {
		t.Errorf("resolved tables do not compile: %v", err)
	}

	cases := map[string]struct {
		data map[string]map[string]string
		want string
	}{
		"no ConfigMap":     {map[string]map[string]string{"json": data["json"]}, `table "entries": ConfigMap entries does not exist`},
		"no key":           {map[string]map[string]string{"entries": data["entries"], "json": {}}, `table "json": ConfigMap json: it has no key "t.json"`},
		"not a number":     {map[string]map[string]string{"entries": {"a": "NaN"}, "json": data["json"]}, `table "entries": ConfigMap entries: key "a": the value "NaN" is not a finite number`},
		"a JSON string":    {map[string]map[string]string{"entries": data["entries"], "json": {"t.json": `{"a": "1"}`}}, `key "t.json": the value of "a" is not a number`},
		"a duplicate key":  {map[string]map[string]string{"entries": data["entries"], "json": {"t.json": `{"a": 1, "a": 2}`}}, `the table's key "a" is given twice`},
		"trailing text":    {map[string]map[string]string{"entries": data["entries"], "json": {"t.json": `{"a": 1} x`}}, "text follows the object"},
		"out of range":     {map[string]map[string]string{"entries": data["entries"], "json": {"t.json": `{"a": 1e999}`}}, `the value of "a" is not a number`},
		"not an object":    {map[string]map[string]string{"entries": data["entries"], "json": {"t.json": `[1]`}}, "not a JSON object of numbers"},
		"too many entries": {map[string]map[string]string{"entries": manyEntries(MaxLookupTableEntries + 1), "json": data["json"]}, "a table holds at most 4096"},
		"too many in JSON": {map[string]map[string]string{"entries": data["entries"], "json": {"t.json": manyJSON(MaxLookupTableEntries + 1)}}, "more than 4096 entries"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ResolvedTransforms(p, func(name string) (map[string]string, bool, error) { d, ok := tc.data[name]; return d, ok, nil })
			if !errors.Is(err, ErrInvalidLookupTable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want an invalid table saying %q", err, tc.want)
			}
		})
	}

	// A failed read is not the spec's fault: it is returned for a retry, unmarked.
	_, err = ResolvedTransforms(p, func(string) (map[string]string, bool, error) { return nil, false, errors.New("timeout") })
	if err == nil || errors.Is(err, ErrInvalidLookupTable) || !strings.Contains(err.Error(), `lookup table "entries": reading ConfigMap entries: timeout`) {
		t.Errorf("a failed read: %v", err)
	}
}

func manyEntries(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m["k"+strconv.Itoa(i)] = "1"
	}
	return m
}

func manyJSON(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `": 1`)
	}
	b.WriteString("}")
	return b.String()
}

// FuzzJSONTable: whatever a ConfigMap's entry holds, the parser answers a table of finite
// numbers or an error, and never panics.
func FuzzJSONTable(f *testing.F) {
	for _, seed := range []string{`{"a": 1}`, `{}`, `{"a": 1, "a": 2}`, `{"a": "1"}`, `{"a": 1e999}`, `[1]`, `{"a": 1} x`, `{"\u00e9": -0.5e-3}`, ``, `{"a":`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		values, err := jsonTable(text)
		if err != nil {
			return
		}
		for k, v := range values {
			if _, err := finite(v); err != nil {
				t.Errorf("%q: key %q holds %q", text, k, v)
			}
		}
	})
}
