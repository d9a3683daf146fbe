package proxy

import (
	"encoding/json"
	"net/url"
	"testing"
)

func TestParsePagingUpstreamRules(t *testing.T) {
	cases := []struct {
		query    string
		page     int
		size     int
		desc     bool
		sortEcho string
	}{
		{"", 1, 20, false, ""},
		{"page=3&page_size=50", 3, 50, false, ""},
		{"page=0", 1, 20, false, ""},
		{"page=-1", 1, 20, false, ""},
		{"page=abc", 1, 20, false, ""},
		{"page=1.5", 1, 20, false, ""},
		{"page=99999999999999999999", 1, 20, false, ""},
		{"page_size=100", 1, 100, false, ""},
		{"page_size=101", 1, 20, false, ""}, // upstream resets, never clamps
		{"page_size=100000", 1, 20, false, ""},
		{"page_size=0", 1, 20, false, ""},
		{"page_size=-5", 1, 20, false, ""},
		{"sort_by=name&sort_direction=desc", 1, 20, true, "name"},
		{"sort_by=name&sort_direction=DESC", 1, 20, false, "name"},
		{"sort_by=bogus&sort_direction=sideways", 1, 20, false, "bogus"},
	}
	for _, tc := range cases {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		p := ParsePaging(q)
		if p.Page != tc.page || p.PageSize != tc.size || p.Desc != tc.desc || p.SortBy != tc.sortEcho {
			t.Errorf("%q: got %+v", tc.query, p)
		}
	}
}

func TestPaginationShape(t *testing.T) {
	cases := []struct {
		p     Paging
		total int
		want  string
	}{
		{Paging{Page: 1, PageSize: 20}, 0,
			`{"page":1,"page_size":20,"total_count":0,"total_pages":0,"has_next":false,"has_prev":false}`},
		{Paging{Page: 1, PageSize: 20}, 45,
			`{"page":1,"page_size":20,"total_count":45,"total_pages":3,"has_next":true,"has_prev":false,"next_page":2}`},
		{Paging{Page: 2, PageSize: 20, SortBy: "name", Desc: true}, 45,
			`{"page":2,"page_size":20,"total_count":45,"total_pages":3,"has_next":true,"has_prev":true,"next_page":3,"prev_page":1,"sort_by":"name","sort_direction":"desc"}`},
		{Paging{Page: 3, PageSize: 20, SortBy: "bogus"}, 45,
			`{"page":3,"page_size":20,"total_count":45,"total_pages":3,"has_next":false,"has_prev":true,"prev_page":2,"sort_by":"bogus","sort_direction":"asc"}`},
		{Paging{Page: 9, PageSize: 20}, 45,
			`{"page":9,"page_size":20,"total_count":45,"total_pages":3,"has_next":false,"has_prev":true,"prev_page":8}`},
	}
	for _, tc := range cases {
		b, err := json.Marshal(NewPagination(tc.p, tc.total))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%+v total %d:\n got %s\nwant %s", tc.p, tc.total, b, tc.want)
		}
	}
}
