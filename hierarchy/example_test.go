package hierarchy_test

import (
	"fmt"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func Example() {
	records := []hierarchy.Record{
		{ID: "own", Name: "Owner"},
		{ID: "dis", Name: "Acme Distribution", CustomData: []byte(`{"type":"distributor","createdBy":"own","rebrandingEnabled":true}`)},
		{ID: "res", Name: "Nova Reseller", CustomData: []byte(`{"type":"reseller","createdBy":"dis","suspendedAt":"2024-06-01T00:00:00Z"}`)},
		{ID: "cus", Name: "Rossi Srl", CustomData: []byte(`{"type":"customer","createdBy":"res","vat":"IT123"}`)},
		{ID: "bad", Name: "Lost", CustomData: []byte(`{"type":"customer","createdBy":"nowhere"}`)},
	}
	tree := hierarchy.Build(records, hierarchy.Options{})
	fmt.Println("problems:", tree.Stats().Problems.Total(), "orphans:", tree.Stats().Orphans)

	cus, _ := tree.Org("cus")
	fmt.Println("id:", cus.ID)
	fmt.Println("suspended by:", cus.SuspendedByOrgID, "rebranded by:", cus.RebrandingOrgID)
	fmt.Println("custom_data:", string(cus.CustomData))

	distributor := hierarchy.Principal{OrgID: "dis", Role: hierarchy.RoleDistributor}
	page := tree.List(distributor, hierarchy.TypeCustomer, hierarchy.Query{Search: "it1", SortBy: "name"})
	for _, o := range page.Orgs {
		fmt.Println("listed:", o.LogtoID, o.Name)
	}
	fmt.Println("distributor sees bad:", tree.CanSee(distributor, "bad"))
	// The id is uuid5(uuid5(NAMESPACE_URL, "https://github.com/logto-proxy/logto-proxy/organization"), "cus"),
	// as Python's uuid module also computes it.

	// Output:
	// problems: 1 orphans: 1
	// id: 339f34d4-9090-5759-a37e-4049ac4e328a
	// suspended by: res rebranded by: dis
	// custom_data: {"type":"customer","createdBy":"res","vat":"IT123"}
	// listed: cus Rossi Srl
	// distributor sees bad: false
}
