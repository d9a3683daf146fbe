package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeCommands keeps the README's promises true: its first lines give
// the run and test commands, CI runs that test command, and the configuration
// table lists every setting the binary reads.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Join(strings.SplitN(string(readme), "\n", 8)[:7], "\n")
	for _, cmd := range []string{"go run ./cmd/logto-proxy -demo", "go test ./..."} {
		if !strings.Contains(head, cmd) {
			t.Errorf("README's first lines do not give %q", cmd)
		}
	}
	if !strings.Contains(string(ci), "\ngo test ./...\n") {
		t.Error(".ci/run does not run the README's test command `go test ./...`")
	}
	for _, s := range settings() {
		row := "| `" + s.env + "` | `-" + s.flag + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README's configuration table has no row starting %s", row)
		}
	}
}
