package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// allowedImports is shared/style.md's dependency table: which project
// packages each package may import (tests included). cmd/... may import
// everything. A package missing here fails the test, so new packages must
// state their place in the layering.
var allowedImports = map[string][]string{
	"model":               {},
	"model/downsample":    {"model"},
	"storage":             {"model"},
	"ingester/ingesterpb": {"model"},
	"ingester":            {"storage", "ring", "model", "ingester/ingesterpb", "model/downsample"},
	"distributor":         {"ring", "ingester/ingesterpb", "model", "api/vigil/v1"},
	"querier":             {"ring", "ingester/ingesterpb", "model", "model/downsample"},
	"compactor":           {"storage", "model", "model/downsample"},
	"ring":                {"model"},
	"collector":           {"ring", "sdk", "model", "api/vigil/v1", "internal/etcdwatch", "internal/etcdtest"},
	"rules":               {"model", "ring", "internal/etcdwatch", "internal/etcdtest"}, // ring.Rendezvous: the owner of a rule group
	"alerting":            {"model", "internal/etcdtest"},
	"adapter":             {"internal/vigiltest"},    // tests run the real vigil binary
	"api":                 {"model", "api/vigil/v1"}, // HTTP handlers and the vigil.v1.Query service
	"sdk":                 {"model", "api/vigil/v1", "internal/vigiltest"},
	"api/vigil/v1":        {}, // the public gRPC API's generated code
	"loadgen":             {"sdk", "model"},
	"internal/vigiltest":  {}, // runs the real vigil binary for tests and examples
	"internal/etcdtest":   {}, // embedded etcd and a TCP proxy for tests (_test.go files only)
	"internal/etcdwatch":  {}, // the etcd prefix watch of the rule store and the target registry
	"examples/selfmon":    {"sdk", "internal/vigiltest"},
	"integration":         {"sdk"}, // black-box: only the binaries, public protocols and the public Go SDK
}

// testOnly are packages that only tests (_test.go files) may import.
var testOnly = map[string]bool{"internal/etcdtest": true}

const module = "github.com/vigil-tsdb/vigil/"

func TestImportLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "-test", "github.com/vigil-tsdb/vigil/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			ForTest    string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := p.ImportPath
		isTest := p.ForTest != "" || strings.HasSuffix(name, ".test")
		if p.ForTest != "" {
			name = p.ForTest
		}
		name = strings.TrimSuffix(strings.TrimPrefix(strings.Fields(name)[0], module), ".test")
		name = strings.TrimSuffix(name, "_test")
		if strings.HasPrefix(name, "cmd/") || !strings.HasPrefix(p.ImportPath, module) {
			continue
		}
		allowed, ok := allowedImports[name]
		if !ok {
			t.Errorf("package %s is not in the layering table (cmd/vigil/layering_test.go, shared/style.md)", name)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.Fields(strings.TrimPrefix(imp, module))[0] // "x [x.test]" in test variants
			if dep == name || dep == name+"_test" {                   // the test main imports the package's external tests
				continue
			}
			okDep := false
			for _, a := range allowed {
				if dep == a {
					okDep = true
				}
			}
			if !okDep {
				t.Errorf("%s imports %s; allowed: %v", name, dep, allowed)
			}
			if testOnly[dep] && !isTest {
				t.Errorf("%s imports %s outside its tests; only _test.go files may", name, dep)
			}
		}
	}
}
