package proxy

import (
	"net/url"
	"strconv"
)

// Paging is a list request's page, page size and requested order, parsed with
// the upstream's forgiving rules: a bad value never yields a 400, it falls
// back to the default (page 1, page_size 20, ascending).
type Paging struct {
	Page     int
	PageSize int
	// SortBy is the raw sort_by value, echoed in the answer even when it is not
	// a field the endpoint can sort by (upstream behaviour).
	SortBy string
	// Desc is true only for sort_direction=desc; anything else is ascending.
	Desc bool
}

const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// ParsePaging reads page, page_size, sort_by and sort_direction from a query.
// page must be an integer > 0 else 1; page_size an integer in 1..100 else 20
// (never clamped: 101 becomes 20, as upstream); sort_direction "desc" or
// "asc" else "asc".
func ParsePaging(q url.Values) Paging {
	p := Paging{Page: 1, PageSize: defaultPageSize, SortBy: q.Get("sort_by")}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		p.Page = n
	}
	if n, err := strconv.Atoi(q.Get("page_size")); err == nil && n > 0 && n <= maxPageSize {
		p.PageSize = n
	}
	p.Desc = q.Get("sort_direction") == "desc" // case-sensitive, as upstream
	return p
}

// Pagination is the upstream's pagination object. next_page and prev_page are
// omitted (not null) when there is no such page, and sort_by/sort_direction
// only appear when the request named a sort_by.
type Pagination struct {
	Page          int    `json:"page"`
	PageSize      int    `json:"page_size"`
	TotalCount    int    `json:"total_count"`
	TotalPages    int    `json:"total_pages"`
	HasNext       bool   `json:"has_next"`
	HasPrev       bool   `json:"has_prev"`
	NextPage      int    `json:"next_page,omitempty"`
	PrevPage      int    `json:"prev_page,omitempty"`
	SortBy        string `json:"sort_by,omitempty"`
	SortDirection string `json:"sort_direction,omitempty"`
}

// NewPagination computes the pagination object for a page of a result of
// total items.
func NewPagination(p Paging, total int) Pagination {
	pg := Pagination{Page: p.Page, PageSize: p.PageSize, TotalCount: total}
	if total > 0 {
		pg.TotalPages = (total + p.PageSize - 1) / p.PageSize
	}
	pg.HasNext = p.Page < pg.TotalPages
	pg.HasPrev = p.Page > 1
	if pg.HasNext {
		pg.NextPage = p.Page + 1
	}
	if pg.HasPrev {
		pg.PrevPage = p.Page - 1
	}
	if p.SortBy != "" {
		pg.SortBy = p.SortBy
		pg.SortDirection = "asc"
		if p.Desc {
			pg.SortDirection = "desc"
		}
	}
	return pg
}
