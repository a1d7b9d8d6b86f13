package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// subcommand splits `vigil <name> <command> ...`: with no command or a
// help request it prints usage and returns an error (flag.ErrHelp for
// help).
func subcommand(name, usage string, args []string, stderr io.Writer) (string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return "", nil, fmt.Errorf("%s: a command is needed", name)
		}
		return "", nil, flag.ErrHelp
	}
	return args[0], args[1:], nil
}

// urlFlag adds -url, a node's HTTP API: $VIGIL_URL or http://localhost:9009.
func urlFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("VIGIL_URL")
	if def == "" {
		def = "http://localhost:9009"
	}
	return fs.String("url", def, "the node's HTTP API")
}

// checkURL refuses a -url that is not http[s]://host[:port].
func checkURL(cmd, base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: -url %q: want http[s]://host:port", cmd, base)
	}
	return nil
}

// apiCall does one call of the notifier's API for the command cmd; it
// returns the "data" member's JSON and decodes it into out (if not nil),
// or the API's error.
func apiCall(ctx context.Context, cmd, method, u string, body []byte, out any) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string
		Error  string
		Data   json.RawMessage
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err := json.Unmarshal(b, &env); err != nil {
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %s answers 404: does the node run the notifier (the single node, or a node with the ruler role)?", cmd, u)
		}
		return nil, fmt.Errorf("%s: %s %s: %s: %.200q", cmd, method, u, resp.Status, b)
	}
	if env.Status != "success" {
		return nil, fmt.Errorf("%s: %s", cmd, env.Error)
	}
	if out != nil && len(env.Data) > 0 && string(env.Data) != "null" {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return nil, fmt.Errorf("%s: decode the answer: %w", cmd, err)
		}
	}
	return env.Data, nil
}
