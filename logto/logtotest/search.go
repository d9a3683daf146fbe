package logtotest

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Search match modes (Logto's SearchMatchMode).
const (
	modeExact     = "exact"
	modeLike      = "like"
	modeSimilarTo = "similar_to"
	modePosix     = "posix"
)

// searchItem is one field group of an advanced search: a mode, an optional
// field (empty: every searchable field) and its values.
type searchItem struct {
	mode   string
	field  string
	values []string
}

// search is a parsed advanced search (logto-contract.md §3.2).
type search struct {
	items         []searchItem
	and           bool
	caseSensitive bool
}

// rawPairs splits a raw query into its key/value pairs in order, repeated
// keys kept apart.
func rawPairs(raw string) []queryPair {
	var pairs []queryPair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		pairs = append(pairs, queryPair{key, value})
	}
	return pairs
}

// searchField returns the field of a "search.x" / "mode.x" key, refusing
// nested paths and fields outside allowed.
func searchField(key string, allowed []string) (string, *APIError) {
	path := strings.Split(key, ".")
	if len(path) > 2 {
		return "", errInvalidSearch(fmt.Sprintf(
			"Unsupported nested search field path `%s` detected. Only the first level field is supported.",
			strings.Join(path[1:], ".")))
	}
	if len(path) < 2 || path[1] == "" {
		return "", nil // the general field
	}
	if !containsString(allowed, snakeCase(path[1])) {
		return "", errInvalidSearch(fmt.Sprintf("Search field `%s` is not allowed. Expect one of %s.",
			path[1], strings.Join(allowed, ", ")))
	}
	return snakeCase(path[1]), nil
}

// parseSearch reads Logto's advanced search parameters (search, search.<f>,
// mode, mode.<f>, joint/jointMode, isCaseSensitive) over the allowed
// (snake_case) fields. Errors become 400 request.invalid_input.
func parseSearch(rawQuery string, allowed []string) (search, error) {
	pairs := rawPairs(rawQuery)
	var s search
	var joint, jointMode, caseSensitive string
	var hasJoint, hasJointMode, hasCase bool
	modes := map[string]string{}
	values := map[string][]string{}
	var order []string
	for _, kv := range pairs {
		switch {
		case kv.key == "joint":
			if !hasJoint {
				joint, hasJoint = kv.value, true
			}
		case kv.key == "jointMode":
			if !hasJointMode {
				jointMode, hasJointMode = kv.value, true
			}
		case kv.key == "isCaseSensitive":
			if !hasCase {
				caseSensitive, hasCase = kv.value, true
			}
		case strings.HasPrefix(kv.key, "mode"):
			field, err := searchField(kv.key, allowed)
			if err != nil {
				return search{}, err
			}
			switch kv.value {
			case modeExact, modeLike, modeSimilarTo, modePosix:
			default:
				msg := fmt.Sprintf("Search match mode `%s`", kv.value)
				if field != "" {
					msg += fmt.Sprintf(" for field `%s`", field)
				}
				return search{}, errInvalidSearch(msg + " is not valid, expect one of exact, like, similar_to, posix.")
			}
			modes[field] = kv.value
		case strings.HasPrefix(kv.key, "search"):
			field, err := searchField(kv.key, allowed)
			if err != nil {
				return search{}, err
			}
			if _, seen := values[field]; !seen {
				order = append(order, field)
			}
			values[field] = append(values[field], kv.value)
		}
	}
	if !hasJoint {
		joint = jointMode
	}
	switch joint {
	case "", "or":
	case "and":
		s.and = true
	default:
		return search{}, errInvalidSearch(fmt.Sprintf("Search joint mode `%s` is not valid, expect one of and, or.", joint))
	}
	s.caseSensitive = isTruthy(caseSensitive)
	for _, field := range order {
		mode, ok := modes[field]
		if !ok {
			mode, ok = modes[""]
		}
		if !ok {
			mode = modeLike
		}
		vals := values[field]
		if mode != modeExact && len(vals) != 1 {
			return search{}, errInvalidSearch("Only one search value is allowed when search mode is not `exact`.")
		}
		for _, v := range vals {
			if v == "" {
				return search{}, errInvalidSearch("Search value cannot be empty.")
			}
		}
		if mode == modeSimilarTo && !s.caseSensitive {
			return search{}, errInvalidSearch("Cannot use case-insensitive match for `similar to`.")
		}
		if mode == modeExact && !s.caseSensitive {
			lowered := make([]string, len(vals))
			for i, v := range vals {
				lowered[i] = strings.ToLower(v)
			}
			vals = lowered
		}
		s.items = append(s.items, searchItem{mode: mode, field: field, values: vals})
	}
	return s, nil
}

// compiledSearch is a search ready to test records.
type compiledSearch struct {
	and   bool
	items []compiledItem
}

type compiledItem struct {
	fields  []string
	matches []func(string) bool
}

// compile prepares the matchers. fieldsAll are the fields of a general
// (field-less) search.
func (s search) compile(fieldsAll []string) (compiledSearch, error) {
	cs := compiledSearch{and: s.and}
	for _, it := range s.items {
		ci := compiledItem{fields: fieldsAll}
		if it.field != "" {
			ci.fields = []string{it.field}
		}
		for _, v := range it.values {
			m, err := newMatcher(it.mode, v, s.caseSensitive)
			if err != nil {
				return compiledSearch{}, errInvalidSearch(err.Error())
			}
			ci.matches = append(ci.matches, m)
		}
		cs.items = append(cs.items, ci)
	}
	return cs, nil
}

// match tests a record, given a function returning a field's value (nil for
// SQL NULL, which never matches).
func (cs compiledSearch) match(field func(string) *string) bool {
	if len(cs.items) == 0 {
		return true
	}
	for _, it := range cs.items {
		ok := it.match(field)
		if cs.and && !ok {
			return false
		}
		if !cs.and && ok {
			return true
		}
	}
	return cs.and
}

func (ci compiledItem) match(field func(string) *string) bool {
	for _, f := range ci.fields {
		v := field(f)
		if v == nil {
			continue
		}
		for _, m := range ci.matches {
			if m(*v) {
				return true
			}
		}
	}
	return false
}

// newMatcher builds the predicate of one value under a match mode.
func newMatcher(mode, value string, caseSensitive bool) (func(string) bool, error) {
	switch mode {
	case modeExact:
		if caseSensitive {
			return func(s string) bool { return s == value }, nil
		}
		return func(s string) bool { return strings.ToLower(s) == value }, nil
	case modeLike:
		return likeMatcher(value, !caseSensitive), nil
	case modePosix:
		expr := value
		if !caseSensitive {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression: %w", err)
		}
		return re.MatchString, nil
	case modeSimilarTo:
		re, err := regexp.Compile(similarToRegexp(value))
		if err != nil {
			return nil, fmt.Errorf("invalid SIMILAR TO pattern: %w", err)
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("unknown search mode %q", mode)
}

// likeMatcher implements SQL LIKE (ILIKE when insensitive): % matches any
// run, _ any one character, backslash escapes.
func likeMatcher(pattern string, insensitive bool) func(string) bool {
	if !insensitive {
		return compileLike(pattern)
	}
	match := compileLike(strings.ToLower(pattern))
	return func(s string) bool { return match(strings.ToLower(s)) }
}

// lowerLikeMatcher is ILIKE for values already in lower case (stored
// lowered names, generated ids): the pattern alone is lowered.
func lowerLikeMatcher(pattern string) func(string) bool {
	return compileLike(strings.ToLower(pattern))
}

// compileLike builds a case-sensitive LIKE predicate.
func compileLike(pattern string) func(string) bool {
	// Fast path: %literal% with no other wildcard is a substring test.
	if inner, ok := strings.CutPrefix(pattern, "%"); ok {
		if lit, ok := strings.CutSuffix(inner, "%"); ok && !strings.ContainsAny(lit, `%_\`) {
			return func(s string) bool { return strings.Contains(s, lit) }
		}
	}
	p := []rune(pattern)
	return func(s string) bool { return likeMatch(p, []rune(s)) }
}

// likeMatch is an iterative wildcard matcher with single-star backtracking,
// linear in practice.
func likeMatch(p, s []rune) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; {
			case c == '%':
				starP, starS = pi, si
				pi++
				continue
			case c == '_':
				pi++
				si++
				continue
			case c == '\\' && pi+1 < len(p):
				if p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
			case c == s[si]:
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '%' {
		pi++
	}
	return pi == len(p)
}

// similarToRegexp translates a SQL SIMILAR TO pattern into an anchored Go
// regular expression.
func similarToRegexp(pattern string) string {
	var b strings.Builder
	b.WriteString("^(?:")
	for i := 0; i < len(pattern); {
		r, size := utf8.DecodeRuneInString(pattern[i:])
		i += size
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		case '\\':
			if i < len(pattern) {
				next, n := utf8.DecodeRuneInString(pattern[i:])
				i += n
				b.WriteString(regexp.QuoteMeta(string(next)))
			}
		case '|', '*', '+', '?', '{', '}', '(', ')', '[', ']':
			b.WriteRune(r)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(")$")
	return b.String()
}

// snakeCase converts camelCase field names to Logto's snake_case columns.
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
