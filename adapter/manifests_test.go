package adapter_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/vigil-tsdb/vigil/adapter"
)

const manifestDir = "../deploy/kubernetes"

// strictDecoder decodes YAML into the typed objects of client-go's
// scheme plus apiregistration.k8s.io; unknown and duplicate fields are
// errors.
func strictDecoder(t *testing.T) runtime.Decoder {
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiregistrationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Yaml: true, Strict: true})
}

// documents splits a multi-document YAML file.
func documents(t *testing.T, b []byte) [][]byte {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(d)) > 0 && strings.TrimSpace(stripComments(string(d))) != "" {
			docs = append(docs, d)
		}
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestManifestsDecodeStrictly(t *testing.T) {
	dec := strictDecoder(t)
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	examples, err2 := filepath.Glob(filepath.Join(manifestDir, "examples", "*.yaml"))
	files = append(files, examples...)
	if err != nil || err2 != nil || len(files) == 0 || len(examples) == 0 {
		t.Fatalf("no manifests in %s: %v", manifestDir, err)
	}
	var kinds []string
	objs := map[string]runtime.Object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range documents(t, b) {
			obj, gvk, err := dec.Decode(d, nil, nil)
			if err != nil {
				t.Errorf("%s document %d: %v", filepath.Base(f), i, err)
				continue
			}
			if _, ok := obj.(*runtime.Unknown); ok {
				t.Errorf("%s document %d: %v is not a typed object", filepath.Base(f), i, gvk)
			}
			kinds = append(kinds, gvk.Kind)
			objs[gvk.Kind+"/"+nameOf(obj)] = obj
		}
	}
	sort.Strings(kinds)
	want := "APIService APIService APIService ClusterRole ClusterRoleBinding ClusterRoleBinding ConfigMap Deployment HorizontalPodAutoscaler HorizontalPodAutoscaler Namespace RoleBinding Service ServiceAccount"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("kinds:\n got %s\nwant %s", got, want)
	}

	// The three group/versions, all to the adapter's Service.
	for _, name := range []string{"v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"} {
		a, ok := objs["APIService/"+name].(*apiregistrationv1.APIService)
		if !ok {
			t.Errorf("no APIService %s", name)
			continue
		}
		if name != a.Spec.Version+"."+a.Spec.Group || a.Spec.Service == nil || a.Spec.Service.Name != "vigil-adapter" || a.Spec.Service.Namespace != "vigil-system" {
			t.Errorf("APIService %s: %+v", name, a.Spec)
		}
	}
	// The ConfigMap's rules load, and the Deployment mounts them where
	// --config points.
	cm := objs["ConfigMap/vigil-adapter"].(*corev1.ConfigMap)
	cfg, err := adapter.ParseConfig("configmap.yaml rules.yaml", []byte(cm.Data["rules.yaml"]))
	if err != nil {
		t.Errorf("ConfigMap rules: %v", err)
	} else if len(cfg.External) == 0 {
		t.Errorf("ConfigMap rules have no external metric for hpa-external.yaml")
	}
	dep := objs["Deployment/vigil-adapter"].(*appsv1.Deployment)
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--config=/etc/vigil-adapter/rules.yaml") || dep.Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath != "/etc/vigil-adapter" {
		t.Errorf("deployment does not mount the rules where --config points: %s", args)
	}
	// The external HPA names a configured external metric.
	hpa := objs["HorizontalPodAutoscaler/order-worker"].(*autoscalingv2.HorizontalPodAutoscaler)
	found := false
	for _, e := range cfg.External {
		found = found || e.Name == hpa.Spec.Metrics[0].External.Metric.Name
	}
	if !found {
		t.Errorf("hpa-external.yaml uses %q, not in the ConfigMap", hpa.Spec.Metrics[0].External.Metric.Name)
	}
}

// The decoder is strict: a misspelt field fails, so the test above can.
func TestManifestDecoderRejectsUnknownFields(t *testing.T) {
	dec := strictDecoder(t)
	for _, doc := range []string{
		"apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.x.io}\nspec: {group: x.io, version: v1beta1, groupPriorityMinimum: 1, versionPriority: 1, insecureSkipTlsVerify: true}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 443, targetport: 6443}]}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nmetadata: {name: t}\n",
	} {
		if _, _, err := dec.Decode([]byte(doc), nil, nil); err == nil || !runtime.IsStrictDecodingError(err) {
			t.Errorf("decoded without a strict decoding error (%v):\n%s", err, doc)
		}
	}
}

func nameOf(obj runtime.Object) string {
	if m, ok := obj.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}
