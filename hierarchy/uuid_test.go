package hierarchy

import (
	"encoding/json"
	"regexp"
	"testing"
)

func TestNewUUIDv5MatchesRFC9562Vector(t *testing.T) {
	// RFC 9562 Appendix A.4: UUIDv5 of "www.example.com" in the DNS namespace.
	dns := UUID{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if got, want := NewUUIDv5(dns, "www.example.com").String(), "2ed6657d-e927-568b-95e1-2665a8aea6a2"; got != want {
		t.Fatalf("v5(DNS, www.example.com) = %s, want %s", got, want)
	}
}

func TestOrgNamespaceIsPinned(t *testing.T) {
	derived := NewUUIDv5(NamespaceURL(), "https://github.com/logto-proxy/logto-proxy/organization")
	if derived != OrgNamespace() {
		t.Fatalf("OrgNamespace() = %s, derivation gives %s", OrgNamespace(), derived)
	}
	if got := OrgNamespace().String(); got != "4a600b32-c03e-56d8-b88a-ff5756fa9be1" {
		t.Fatalf("OrgNamespace() = %s; changing it changes every served id", got)
	}
}

func TestOrgUUIDIsStableAndVersioned(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	long := string(make([]byte, 300)) // longer than the stack buffer
	seen := map[UUID]string{}
	for _, id := range []string{"", "a", "abcdefghijkl", "abcdefghijkm", long} {
		u := OrgUUID(id)
		if u != OrgUUID(id) {
			t.Errorf("OrgUUID(%q) is not deterministic", id)
		}
		if !shape.MatchString(u.String()) {
			t.Errorf("OrgUUID(%q) = %s, not a version 5 RFC 9562 UUID", id, u)
		}
		if other, dup := seen[u]; dup {
			t.Errorf("OrgUUID(%q) == OrgUUID(%q)", id, other)
		}
		seen[u] = id
	}
}

func TestUUIDEncodesAsString(t *testing.T) {
	u := OrgUUID("abc")
	got, err := json.Marshal(struct{ ID UUID }{u})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"` + u.String() + `"}`; string(got) != want {
		t.Fatalf("json = %s, want %s", got, want)
	}
	if b := u.AppendText([]byte("x")); string(b) != "x"+u.String() {
		t.Fatalf("AppendText = %q", b)
	}
}
