package logtotest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// guard validates a JSON request body the way Logto's zod guards do, and
// collects every failure so that the 400 lists them all. Unknown keys are
// ignored (zod strips them).
type guard struct {
	fields map[string]json.RawMessage
	issues []zodIssue
}

// newGuard parses body, which must be a JSON object.
func newGuard(body []byte) *guard {
	g := &guard{}
	if err := json.Unmarshal(body, &g.fields); err != nil || g.fields == nil {
		g.issues = append(g.issues, zodIssue{
			Code: "invalid_type", Expected: "object", Received: jsonKind(body),
			Path: []any{}, Message: "Expected object, received " + jsonKind(body),
		})
		g.fields = map[string]json.RawMessage{}
	}
	return g
}

// err returns the guard.invalid_input error when any check failed.
func (g *guard) err() error {
	if len(g.issues) == 0 {
		return nil
	}
	return errGuard("body", g.issues)
}

func (g *guard) typeIssue(key, expected string, raw json.RawMessage) {
	got := jsonKind(raw)
	msg := "Expected " + expected + ", received " + got
	if got == "undefined" {
		msg = "Required"
	}
	g.issues = append(g.issues, zodIssue{
		Code: "invalid_type", Expected: expected, Received: got, Path: []any{key}, Message: msg,
	})
}

// str reads a string field. required: absent is an issue; nullable: null is
// accepted and returned as (nil, true). minLen/maxLen are zod's min/max
// (maxLen 0 = unbounded). ok reports whether the key was present.
func (g *guard) str(key string, required, nullable bool, minLen, maxLen int) (v *string, ok bool) {
	raw, present := g.fields[key]
	if !present {
		if required {
			g.typeIssue(key, "string", nil)
		}
		return nil, false
	}
	if isNull(raw) {
		if nullable {
			return nil, true
		}
		g.typeIssue(key, "string", raw)
		return nil, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		g.typeIssue(key, "string", raw)
		return nil, true
	}
	n := utf8.RuneCountInString(s)
	if n < minLen {
		g.issues = append(g.issues, sizeIssue("too_small", key, minLen,
			"String must contain at least "+strconv.Itoa(minLen)+" character(s)"))
	}
	if maxLen > 0 && n > maxLen {
		g.issues = append(g.issues, sizeIssue("too_big", key, maxLen,
			"String must contain at most "+strconv.Itoa(maxLen)+" character(s)"))
	}
	return &s, true
}

// object reads a JSON object field (zod's record / jsonObjectGuard).
func (g *guard) object(key string, required bool) (json.RawMessage, bool) {
	raw, present := g.fields[key]
	if !present {
		if required {
			g.typeIssue(key, "object", nil)
		}
		return nil, false
	}
	if jsonKind(raw) != "object" {
		g.typeIssue(key, "object", raw)
		return nil, true
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		g.typeIssue(key, "object", raw)
		return nil, true
	}
	return json.RawMessage(buf.Bytes()), true
}

// boolean reads a boolean field.
func (g *guard) boolean(key string, required bool) (v, ok bool) {
	raw, present := g.fields[key]
	if !present {
		if required {
			g.typeIssue(key, "boolean", nil)
		}
		return false, false
	}
	if err := json.Unmarshal(raw, &v); err != nil || isNull(raw) {
		g.typeIssue(key, "boolean", raw)
		return false, true
	}
	return v, true
}

// strings reads an array of non-empty strings; nonEmpty requires at least one.
func (g *guard) strings(key string, required, nonEmpty bool) ([]string, bool) {
	raw, present := g.fields[key]
	if !present {
		if required {
			g.typeIssue(key, "array", nil)
		}
		return nil, false
	}
	var items []json.RawMessage
	if jsonKind(raw) != "array" || json.Unmarshal(raw, &items) != nil {
		g.typeIssue(key, "array", raw)
		return nil, true
	}
	if nonEmpty && len(items) == 0 {
		g.issues = append(g.issues, sizeIssue("too_small", key, 1, "Array must contain at least 1 element(s)"))
		return nil, true
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		var s string
		if err := json.Unmarshal(item, &s); err != nil || isNull(item) {
			g.issues = append(g.issues, zodIssue{
				Code: "invalid_type", Expected: "string", Received: jsonKind(item),
				Path: []any{key, i}, Message: "Expected string, received " + jsonKind(item),
			})
			continue
		}
		if s == "" {
			is := sizeIssue("too_small", key, 1, "String must contain at least 1 character(s)")
			is.Path = []any{key, i}
			g.issues = append(g.issues, is)
			continue
		}
		out = append(out, s)
	}
	return out, true
}

func sizeIssue(code, key string, n int, msg string) zodIssue {
	yes, no := true, false
	is := zodIssue{Code: code, Type: "string", Inclusive: &yes, Exact: &no, Path: []any{key}, Message: msg}
	if code == "too_small" {
		is.Minimum = &n
	} else {
		is.Maximum = &n
	}
	return is
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonKind names the JSON type of raw the way zod's "received" does.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "undefined"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
