package bounce_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/ndrbot/ndrbot/bounce"
)

// The caller's path for `/ndr diagnose <pasted bounce>`: parse, branch on
// ErrNoStatus, describe the playbooks as candidates, run the one fit or ask
// among several, offer the closest when none fits.
func Example() {
	data, err := os.ReadFile("testdata/exchange2019-5.5.4.eml")
	if err != nil {
		panic(err)
	}
	b, err := bounce.Parse(data)
	switch {
	case errors.Is(err, bounce.ErrNoStatus):
		fmt.Println("no status code in what was pasted; paste the whole bounce or its diagnostic lines")
		return
	case err != nil: // ErrTooLarge
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s for %s (%s), from %s via %s\n", b.Reply, b.Status, b.Recipient, b.PickedWhy, b.Sender, b.RemoteMTA)

	// Built by the caller from its playbook catalog: id, matches, and each
	// parameter's name, type and whether it is required without a default.
	cands := []bounce.Candidate{
		{ID: "ndr-5.5.4", Matches: []string{"5.5.4", "4.4.0", "550 5.5.4", "service unavailable"},
			Params: []bounce.Param{{Name: "sender", Type: "email"}, {Name: "probe_address", Type: "email"}}},
		{ID: "smtp-421", Matches: []string{"4.3.2", "421 4.3.2", "too many connections"},
			Params: []bounce.Param{{Name: "domain", Type: "domain", Required: true}}},
	}
	sel := bounce.Choose(b, cands)
	switch {
	case len(sel.Fits) == 1:
		fmt.Println("run", sel.Fits[0].ID, sel.Fits[0].Params, "—", sel.Fits[0].Reason)
	case len(sel.Fits) > 1:
		fmt.Println("ask with a button per fit, best first")
	case len(sel.Closest) > 0:
		fmt.Println("no playbook for it; closest:", sel.Closest[0].ID)
	}
	// Output:
	// 550 5.5.4 for bob@fabrikam.com (the only recipient with a status), from alice@contoso.com via contoso-com.mail.protection.outlook.com
	// run ndr-5.5.4 map[sender:alice@contoso.com] — matches "550 5.5.4": the status for bob@fabrikam.com is 550 5.5.4
}
