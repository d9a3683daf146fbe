package logtotest

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Logto's koa-pagination defaults (logto-contract.md §2.2).
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// page is a parsed pagination request. When disabled is true (optional
// pagination without page/page_size) the whole list is answered and no
// paging headers are set.
type page struct {
	number, size int
	disabled     bool
}

func (p page) offset() int { return (p.number - 1) * p.size }

// window returns the [from, to) bounds of this page over n items.
func (p page) window(n int) (from, to int) {
	if p.disabled {
		return 0, n
	}
	from = min(p.offset(), n)
	to = min(from+p.size, n)
	return from, to
}

// parsePage reads page and page_size the way koa-pagination does: a present
// value must be a positive number (page_size at most 100), otherwise 400
// guard.invalid_pagination. With optional pagination and neither parameter,
// the page is disabled.
func parsePage(r *http.Request, optional bool) (page, error) {
	q := r.URL.Query()
	rawPage, rawSize := q.Get("page"), q.Get("page_size")
	if optional && rawPage == "" && rawSize == "" {
		return page{disabled: true}, nil
	}
	p := page{number: 1, size: defaultPageSize}
	if rawPage != "" {
		n, ok := positiveNumber(rawPage, math.MaxInt32)
		if !ok {
			return page{}, errInvalidPagination()
		}
		p.number = n
	}
	if rawSize != "" {
		n, ok := positiveNumber(rawSize, maxPageSize)
		if !ok {
			return page{}, errInvalidPagination()
		}
		p.size = n
	}
	return p, nil
}

// positiveNumber mimics zod's number().positive().max(limit) applied to
// Number(raw). Fractional values are truncated the way Postgres' limit and
// offset coerce them.
func positiveNumber(raw string, limit int) (int, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > float64(limit) {
		return 0, false
	}
	n := int(f)
	if n < 1 {
		n = 1
	}
	return n, true
}

// setPageHeaders sets Total-Number and the Link headers exactly as
// koa-pagination does: first, last, then prev and next when they exist, each
// a separate header with an absolute URL without the /api prefix.
func setPageHeaders(w http.ResponseWriter, r *http.Request, p page, total int) {
	if p.disabled {
		return
	}
	lastPage := max(int(math.Ceil(float64(total)/float64(p.size))), 1)
	h := w.Header()
	h.Set("Total-Number", strconv.Itoa(total))
	h.Add("Link", buildLink(r, 1, "first"))
	h.Add("Link", buildLink(r, lastPage, "last"))
	if p.number > 1 {
		h.Add("Link", buildLink(r, p.number-1, "prev"))
	}
	if p.number < lastPage {
		h.Add("Link", buildLink(r, p.number+1, "next"))
	}
}

// buildLink mirrors Logto's utils/pagination.ts: the origin, the path inside
// the Management API app (no /api) and URLSearchParams({...query, page}).
// Like Koa's query object, a repeated parameter collapses into one value
// joined by commas, and page keeps its position when it was present.
func buildLink(r *http.Request, pageNumber int, rel string) string {
	pairs := orderedQuery(r.URL.RawQuery)
	var b strings.Builder
	b.WriteString("<http://")
	b.WriteString(r.Host)
	b.WriteString(strings.TrimPrefix(r.URL.Path, "/api"))
	b.WriteByte('?')
	pageSet := false
	for i, kv := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		v := kv.value
		if kv.key == "page" {
			v = strconv.Itoa(pageNumber)
			pageSet = true
		}
		b.WriteString(formEscape(kv.key))
		b.WriteByte('=')
		b.WriteString(formEscape(v))
	}
	if !pageSet {
		if len(pairs) > 0 {
			b.WriteByte('&')
		}
		b.WriteString("page=")
		b.WriteString(strconv.Itoa(pageNumber))
	}
	b.WriteString(`>; rel="`)
	b.WriteString(rel)
	b.WriteByte('"')
	return b.String()
}

type queryPair struct{ key, value string }

// orderedQuery parses a raw query keeping first-appearance key order and
// joining repeated keys with commas, as Koa's querystring object followed by
// String(array) does.
func orderedQuery(raw string) []queryPair {
	var pairs []queryPair
	index := make(map[string]int)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		if i, ok := index[key]; ok {
			pairs[i].value += "," + value
			continue
		}
		index[key] = len(pairs)
		pairs = append(pairs, queryPair{key, value})
	}
	return pairs
}

// formEscape encodes like URLSearchParams: application/x-www-form-urlencoded
// with '+' for spaces and only *-._ and alphanumerics left as they are.
func formEscape(s string) string {
	e := url.QueryEscape(s)
	return strings.NewReplacer("~", "%7E", "%2A", "*").Replace(e)
}

// isTruthy is Logto's isTrue for query flags.
func isTruthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true
	}
	return false
}
