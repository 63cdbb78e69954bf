package model

// StringNormalizer: drops stop words from a [C] or [1, C] string tensor, then changes case.

import (
	"fmt"
	"strings"
)

func init() {
	register(opImpl{domain: domainONNX, name: "StringNormalizer", minOpset: 10, maxOpset: maxOpsetONNX, compile: compileStringNormalizer})
}

func compileStringNormalizer(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, String); err != nil {
		return nil, err
	}
	action, err := n.attrString("case_change_action", "NONE")
	if err != nil {
		return nil, err
	}
	var change func(string) string
	switch action {
	case "NONE":
	case "LOWER":
		change = strings.ToLower
	case "UPPER":
		change = strings.ToUpper
	default:
		return nil, fmt.Errorf("case_change_action %q is not LOWER, UPPER or NONE", action)
	}
	sensitive, err := n.attrInt("is_case_sensitive", 0)
	if err != nil {
		return nil, err
	}
	// Case mappings are the same in every English locale, and Go's are Unicode's default ones;
	// others (Turkish dotted i, ...) differ.
	locale, err := n.attrString("locale", "")
	if err != nil {
		return nil, err
	}
	if locale != "" && locale != "C" && locale != "POSIX" && !strings.HasPrefix(locale, "en") {
		return nil, unsupported("StringNormalizer locale %q (English locales only)", locale)
	}
	stops, _, err := n.attrStrings("stopwords")
	if err != nil {
		return nil, err
	}
	stop := map[string]bool{}
	for _, w := range stops {
		if sensitive == 0 {
			w = strings.ToLower(w)
		}
		stop[w] = true
	}
	in := n.shape(0)
	if len(in) != 1 && (len(in) != 2 || in[0] > 1) {
		return nil, fmt.Errorf("input of shape %s is neither [C] nor [1, C]", shapeString(in))
	}
	shape := []int{n.sym()}
	if len(in) == 2 {
		shape = []int{1, n.sym()}
	}
	n.setOutTensor(0, String, shape)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		if len(t.Shape) == 2 && t.Shape[0] != 1 {
			return fmt.Errorf("input of shape %v is neither [C] nor [1, C]", t.Shape)
		}
		var kept []string
		for _, s := range data[string](t) {
			key := s
			if sensitive == 0 {
				key = strings.ToLower(s)
			}
			if stop[key] {
				continue
			}
			if change != nil {
				s = change(s)
			}
			kept = append(kept, s)
		}
		if len(kept) == 0 {
			kept = []string{""} // ONNX's empty result: one empty string
		}
		var err error
		if len(t.Shape) == 2 {
			err = o.reset(String, 1, len(kept))
		} else {
			err = o.reset(String, len(kept))
		}
		if err != nil {
			return err
		}
		copy(o.String, kept)
		return nil
	}), nil
}
