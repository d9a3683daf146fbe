package proxy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func TestParseWebhook(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("user%08d", i)
		}
		return out
	}
	membership := func(added, removed []string) []byte {
		b, _ := json.Marshal(map[string]any{"event": eventMembershipUpdated, "organizationId": "org000000001",
			"params": map[string]string{"id": "org000000001"}, "addedUserIds": added, "removedUserIds": removed})
		return b
	}
	type want struct {
		label                       string
		orgs                        []rereadKey
		users, members, memberships []string
	}
	cases := []struct {
		name string
		body string
		want want
		bad  bool
	}{
		{name: "organization update by params.id",
			body: `{"event":"Organization.Data.Updated","params":{"id":"org000000001"},"data":{"id":"ignored"}}`,
			want: want{label: eventOrgDataUpdated, orgs: []rereadKey{{rereadOrg, "org000000001"}}}},
		{name: "organization creation by data.id",
			body: `{"event":"Organization.Created","params":{},"data":{"id":"org000000002","name":"x"}}`,
			want: want{label: eventOrgCreated, orgs: []rereadKey{{rereadOrg, "org000000002"}}}},
		{name: "organization deletion without data",
			body: `{"event":"Organization.Deleted","params":{"id":"org000000003"}}`,
			want: want{label: eventOrgDeleted, orgs: []rereadKey{{rereadOrg, "org000000003"}}}},
		{name: "user update by params.userId",
			body: `{"event":"User.Data.Updated","params":{"userId":"user00000001"},"data":null}`,
			want: want{label: eventUserDataUpdated, users: []string{"user00000001"}}},
		{name: "user creation by data.id",
			body: `{"event":"User.Created","data":{"id":"user00000002"}}`,
			want: want{label: eventUserCreated, users: []string{"user00000002"}}},
		{name: "sign-in by userId",
			body: `{"event":"PostSignIn","interactionEvent":"SignIn","userId":"user00000003"}`,
			want: want{label: eventPostSignIn, users: []string{"user00000003"}}},
		{name: "membership with deltas",
			body: string(membership([]string{"user00000001"}, []string{"user00000002"})),
			want: want{label: eventMembershipUpdated, members: []string{"user00000001", "user00000002"}}},
		{name: "membership without deltas",
			body: `{"event":"Organization.Membership.Updated","organizationId":"org000000001"}`,
			want: want{label: eventMembershipUpdated, memberships: []string{"org000000001"}}},
		{name: "membership without organizationId, by params.id",
			body: `{"event":"Organization.Membership.Updated","params":{"id":"org000000001"},"addedUserIds":["user00000001"]}`,
			want: want{label: eventMembershipUpdated, members: []string{"user00000001"}}},
		{name: "membership with a delta at Logto's cap",
			body: string(membership(ids(membershipDeltaCap), nil)),
			want: want{label: eventMembershipUpdated, members: ids(membershipDeltaCap), memberships: []string{"org000000001"}}},
		{name: "an event the views do not follow",
			body: `{"event":"Role.Created","data":{"id":"role1"}}`, want: want{label: eventOther}},
		{name: "no event at all", body: `{}`, want: want{label: eventOther}},

		{name: "not JSON", body: `{"event":`, bad: true},
		{name: "not an object", body: `[1,2]`, bad: true},
		{name: "no id", body: `{"event":"Organization.Data.Updated","params":{}}`, bad: true},
		{name: "an id with a slash", body: `{"event":"Organization.Deleted","params":{"id":"a/b"}}`, bad: true},
		{name: "an id too long", body: `{"event":"Organization.Deleted","params":{"id":"` + strings.Repeat("a", 129) + `"}}`, bad: true},
		{name: "data that is no object", body: `{"event":"User.Created","data":[1]}`, bad: true},
		{name: "a number for an id", body: `{"event":"User.Deleted","params":{"userId":12}}`, bad: true},
		{name: "sign-in without userId", body: `{"event":"PostSignIn"}`, bad: true},
		{name: "membership without organization", body: `{"event":"Organization.Membership.Updated","addedUserIds":["u1"]}`, bad: true},
		{name: "membership with a bad user id", body: `{"event":"Organization.Membership.Updated","organizationId":"o1","removedUserIds":["a b"]}`, bad: true},
		{name: "membership with more ids than Logto sends", body: string(membership(ids(membershipDeltaCap+1), nil)), bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := parseWebhook([]byte(tc.body))
			if tc.bad {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", ev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want(ev)
			if got.label != tc.want.label || !slices.Equal(got.orgs, tc.want.orgs) || !slices.Equal(got.users, tc.want.users) ||
				!slices.Equal(got.members, tc.want.members) || !slices.Equal(got.memberships, tc.want.memberships) {
				t.Errorf("parsed %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRereadQueue(t *testing.T) {
	q := newRereadQueue(3)
	a, b, c, d := rereadKey{rereadOrg, "a"}, rereadKey{rereadOrg, "b"}, rereadKey{rereadUser, "a"}, rereadKey{rereadOrg, "d"}
	if !q.add(a, b, a) || !q.add(c) || queued(q) != 3 {
		t.Fatalf("three distinct keys not queued once each: %d", queued(q))
	}
	select {
	case <-q.wake:
	default:
		t.Fatal("adding did not wake the worker")
	}
	if q.add(d) || queued(q) != 3 {
		t.Error("a key past the bound was queued")
	}
	if !q.add(a) {
		t.Error("a key already queued was refused at the bound")
	}

	batch := q.take(2)
	if len(batch) != 2 || queued(q) != 1 {
		t.Fatalf("take(2) took %d, left %d", len(batch), queued(q))
	}
	select {
	case <-q.wake:
	default:
		t.Error("keys left behind do not keep the worker awake")
	}
	rest := q.take(10)
	for k := range rest {
		batch[k] = rest[k]
	}
	if len(batch) != 3 || queued(q) != 0 {
		t.Fatalf("batches hold %d keys, %d left", len(batch), queued(q))
	}

	// Failed keys come back with one more attempt, until the last.
	batch[a] = 1
	if retried, dropped := q.retry(batch, 2); retried != 2 || dropped != 1 {
		t.Errorf("retry = %d retried, %d dropped; want 2 and 1", retried, dropped)
	}
	again := q.take(10)
	if _, ok := again[a]; ok || again[b] != 1 || again[c] != 1 {
		t.Errorf("requeued attempts %v", again)
	}
	// A key queued afresh by a delivery keeps its fresh count.
	q.add(b)
	if retried, dropped := q.retry(map[rereadKey]int{b: 5}, 2); retried != 1 || dropped != 0 || q.take(1)[b] != 0 {
		t.Error("a fresh delivery's key was counted as failed")
	}
}

func TestReplaceRecords(t *testing.T) {
	id := func(r *hierarchy.Record) string { return r.ID }
	same := func(a, b *hierarchy.Record) bool { return a.Name == b.Name }
	records := []hierarchy.Record{{ID: "a", Name: "A"}, {ID: "b", Name: "B"}, {ID: "c", Name: "C"}}
	before := slices.Clone(records)

	next, changed := replaceRecords(records, []hierarchy.Record{{ID: "a", Name: "A"}}, []string{"z"}, id, same)
	if changed || &next[0] != &records[0] {
		t.Error("a re-read that changes nothing reported a change or copied the records")
	}
	next, changed = replaceRecords(records,
		[]hierarchy.Record{{ID: "b", Name: "B2"}, {ID: "d", Name: "D"}}, []string{"a", "z"}, id, same)
	want := []hierarchy.Record{{ID: "b", Name: "B2"}, {ID: "c", Name: "C"}, {ID: "d", Name: "D"}}
	if !changed || !slices.EqualFunc(next, want, func(x, y hierarchy.Record) bool { return x.ID == y.ID && x.Name == y.Name }) {
		t.Errorf("replaced to %+v, want %+v", next, want)
	}
	if !slices.EqualFunc(records, before, func(x, y hierarchy.Record) bool { return x.ID == y.ID && x.Name == y.Name }) {
		t.Error("the served records were modified")
	}
}
