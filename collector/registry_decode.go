package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	pmodel "github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Values are read with a strict walk over the YAML node tree (JSON is YAML
// flow syntax): every field is decoded by name so errors can name it, and
// unknown or repeated fields, aliases and extra documents are refused.

type fieldDecoders map[string]func(n *yaml.Node) error

// inlineSecrets maps fields people write by habit to the _ref field to use.
var inlineSecrets = map[string]string{
	"password":     "password_ref",
	"bearer_token": "bearer_token_ref",
	"ca":           "ca_ref",
	"cert":         "cert_ref",
	"key":          "key_ref",
	"ca_file":      "ca_ref",
	"cert_file":    "cert_ref",
	"key_file":     "key_ref",
}

func decodeValue(b []byte, fields fieldDecoders) (err error) {
	if len(b) > MaxValueBytes {
		return fmt.Errorf("value of %d bytes, limit is %d", len(b), MaxValueBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("empty value")
	}
	defer func() {
		// yaml.v3 reports some malformed input by panicking internally and
		// recovers most of it itself; never let one value take a watcher down.
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed value: %v", p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("malformed value: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("malformed value: more than one document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return fmt.Errorf("malformed value: want one mapping")
	}
	return decodeMapping(doc.Content[0], "", fields)
}

// compact drops empty maps, so that a decoded value equals its normalized
// encoding decoded again ({} and an absent field mean the same).
func (c *ScrapeConfig) compact() {
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if len(c.Params) == 0 {
		c.Params = nil
	}
}

func decodeMapping(n *yaml.Node, path string, fields fieldDecoders) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return prefixed(path, fmt.Errorf("YAML anchors and aliases are not accepted"))
	}
	if n.Kind != yaml.MappingNode {
		return prefixed(path, fmt.Errorf("want a mapping, got %s", kindName(n)))
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return prefixed(path, fmt.Errorf("field names must be strings"))
		}
		name := k.Value
		full := name
		if path != "" {
			full = path + "." + name
		}
		if seen[name] {
			return fmt.Errorf("%s: given twice", full)
		}
		seen[name] = true
		f, ok := fields[name]
		if !ok {
			if ref, isSecret := inlineSecrets[name]; isSecret {
				return fmt.Errorf("%s: inline secrets are not accepted; use %s (a secret name)", full, ref)
			}
			return fmt.Errorf("%s: unknown field", full)
		}
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			return fmt.Errorf("%s: YAML anchors and aliases are not accepted", full)
		}
		if isNull(v) {
			continue // explicitly unset
		}
		if err := f(v); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
	}
	return nil
}

func prefixed(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func targetFields(t *Target) fieldDecoders {
	f := scrapeFields(&t.ScrapeConfig)
	f["job"] = scalarString(&t.Job)
	f["address"] = scalarString(&t.Address)
	return f
}

func scrapeFields(c *ScrapeConfig) fieldDecoders {
	return fieldDecoders{
		"scheme":       scalarString(&c.Scheme),
		"metrics_path": scalarString(&c.MetricsPath),
		"params": func(n *yaml.Node) error {
			c.Params = map[string][]string{}
			return eachPair(n, func(k string, v *yaml.Node) error {
				var vs []string
				if v.Kind == yaml.ScalarNode && !isNull(v) {
					vs = []string{v.Value}
				} else if v.Kind == yaml.SequenceNode {
					for _, e := range v.Content {
						if e.Kind != yaml.ScalarNode || isNull(e) {
							return fmt.Errorf("%s: want strings", k)
						}
						vs = append(vs, e.Value)
					}
				} else {
					return fmt.Errorf("%s: want a string or a list of strings", k)
				}
				c.Params[k] = vs
				return nil
			})
		},
		"interval": scalarDuration(&c.Interval),
		"timeout":  scalarDuration(&c.Timeout),
		"retries": func(n *yaml.Node) error {
			var r int
			if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
				return fmt.Errorf("%s: want an integer", kindName(n))
			}
			if err := n.Decode(&r); err != nil {
				return fmt.Errorf("%q: want an integer", n.Value)
			}
			c.Retries = &r
			return nil
		},
		"labels": func(n *yaml.Node) error {
			c.Labels = map[string]string{}
			return eachPair(n, func(k string, v *yaml.Node) error {
				if v.Kind != yaml.ScalarNode || isNull(v) {
					return fmt.Errorf("%s: want a string value", k)
				}
				c.Labels[k] = v.Value
				return nil
			})
		},
		"honor_labels": func(n *yaml.Node) error {
			var b bool
			if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
				return fmt.Errorf("%s: want true or false", kindName(n))
			}
			if err := n.Decode(&b); err != nil {
				return fmt.Errorf("%q: want true or false", n.Value)
			}
			c.HonorLabels = &b
			return nil
		},
		"basic_auth": func(n *yaml.Node) error {
			c.BasicAuth = &BasicAuth{}
			return decodeMapping(n, "", fieldDecoders{
				"username":     scalarString(&c.BasicAuth.Username),
				"password_ref": scalarString(&c.BasicAuth.PasswordRef),
			})
		},
		"bearer_token_ref": scalarString(&c.BearerTokenRef),
		"tls": func(n *yaml.Node) error {
			c.TLS = &TLSConfig{}
			return decodeMapping(n, "", fieldDecoders{
				"ca_ref":      scalarString(&c.TLS.CARef),
				"cert_ref":    scalarString(&c.TLS.CertRef),
				"key_ref":     scalarString(&c.TLS.KeyRef),
				"server_name": scalarString(&c.TLS.ServerName),
				"insecure_skip_verify": func(n *yaml.Node) error {
					if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
						return fmt.Errorf("%s: want true or false", kindName(n))
					}
					return n.Decode(&c.TLS.InsecureSkipVerify)
				},
			})
		},
	}
}

func eachPair(n *yaml.Node, f func(k string, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping, got %s", kindName(n))
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("names must be strings")
		}
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			return fmt.Errorf("%s: YAML anchors and aliases are not accepted", k.Value)
		}
		if seen[k.Value] {
			return fmt.Errorf("%s: given twice", k.Value)
		}
		seen[k.Value] = true
		if err := f(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func scalarString(p *string) func(n *yaml.Node) error {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("want a string, got %s", kindName(n))
		}
		*p = n.Value
		return nil
	}
}

func scalarDuration(p *Duration) func(n *yaml.Node) error {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("want a duration, got %s", kindName(n))
		}
		d, err := parseDuration(n.Value)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("%q: must be positive", n.Value)
		}
		*p = d
		return nil
	}
}

func promParseDuration(s string) (time.Duration, error) {
	d, err := pmodel.ParseDuration(s)
	return time.Duration(d), err
}
