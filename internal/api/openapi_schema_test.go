package api

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/acme/payments/internal/importer"
)

// The document's Import schema names exactly the fields GET /imports/{id}
// answers (importer.Job's JSON names), so a field added to the job, such as
// file_name, cannot go undocumented.
func TestOpenAPIImportSchemaMatchesTheJob(t *testing.T) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for name := range doc.Components.Schemas["Import"].Properties {
		documented = append(documented, name)
	}
	var answered []string
	jt := reflect.TypeFor[importer.Job]()
	for i := range jt.NumField() {
		name, _, _ := strings.Cut(jt.Field(i).Tag.Get("json"), ",")
		if name != "-" && name != "" {
			answered = append(answered, name)
		}
	}
	slices.Sort(documented)
	slices.Sort(answered)
	if !slices.Equal(documented, answered) {
		t.Fatalf("OpenAPI Import schema properties\n %v\nimporter.Job JSON fields\n %v", documented, answered)
	}
}
