// Package argohealth runs the Argo CD health check of config/argocd/health in a real Lua
// interpreter on an object, as Argo CD does: the envtest suite on objects the operator wrote to
// its API server, the end-to-end suite on those of the real cluster.
package argohealth

import (
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/runtime"
)

// Eval runs the health script at path on obj (a typed object or an unstructured map) and returns
// Argo CD's status and message.
func Eval(path string, obj any) (status, message string, err error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	u, ok := obj.(map[string]any)
	if !ok {
		if u, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj); err != nil {
			return "", "", err
		}
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, u))
	if err := L.DoString(string(script)); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("%s returned %v, not a table", path, L.Get(-1))
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message")), nil
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	}
	return lua.LString("")
}
