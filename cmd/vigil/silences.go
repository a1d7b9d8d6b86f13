package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const silencesUsage = `Usage: vigil silences <command> [flags] [arguments]

Manage the notifier's silences through a node's HTTP API (docs/alerting.md).

Commands:
  ls                                 list silences (pending, active, expired)
  add [flags] MATCHER...             silence the alerts matching every MATCHER
                                     (label="value", label!="v", label=~"re", label!~"re")
  expire ID...                       end silences now

Flags (before or after the command):
  -url         the node's HTTP API (default http://localhost:9009, or $VIGIL_URL)
  -duration    add: how long the silence lasts (default 2h)
  -start       add: when it starts, RFC 3339 (default now)
  -comment     add: why (required)
  -created-by  add: who (default $USER)
  -json        ls: the API's JSON instead of a table
`

// runSilences is `vigil silences ...`.
func runSilences(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, silencesUsage)
		if len(args) == 0 {
			return errors.New("silences: a command is needed")
		}
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("vigil silences "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defURL := os.Getenv("VIGIL_URL")
	if defURL == "" {
		defURL = "http://localhost:9009"
	}
	base := fs.String("url", defURL, "the node's HTTP API")
	duration := fs.Duration("duration", 2*time.Hour, "how long the silence lasts")
	start := fs.String("start", "", "when it starts, RFC 3339 (default now)")
	comment := fs.String("comment", "", "why (required for add)")
	createdBy := fs.String("created-by", os.Getenv("USER"), "who")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("silences: -url %q: want http[s]://host:port", *base)
	}
	api := strings.TrimSuffix(*base, "/") + "/api/v1/alerting/silences"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch cmd {
	case "ls":
		if fs.NArg() > 0 {
			return fmt.Errorf("silences ls: unexpected arguments %q", fs.Args())
		}
		var list []struct {
			ID, State, CreatedBy, Comment string
			Matchers                      []string
			StartsAt, EndsAt              time.Time
		}
		raw, err := apiCall(ctx, "silences", http.MethodGet, api, nil, &list)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := stdout.Write(append(raw, '\n'))
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tSTARTS\tENDS\tCREATED BY\tCOMMENT")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, strings.Join(s.Matchers, ","),
				s.StartsAt.UTC().Format(time.RFC3339), s.EndsAt.UTC().Format(time.RFC3339), s.CreatedBy, s.Comment)
		}
		return tw.Flush()
	case "add":
		if fs.NArg() == 0 {
			return errors.New("silences add: at least one matcher is needed, e.g. 'alertname=\"TargetDown\"'")
		}
		if strings.TrimSpace(*comment) == "" {
			return errors.New("silences add: -comment is required (say why)")
		}
		if strings.TrimSpace(*createdBy) == "" {
			return errors.New("silences add: -created-by is required ($USER is not set)")
		}
		if *duration <= 0 {
			return fmt.Errorf("silences add: -duration %s must be positive", *duration)
		}
		from := time.Now()
		if *start != "" {
			if from, err = time.Parse(time.RFC3339, *start); err != nil {
				return fmt.Errorf("silences add: -start: %w", err)
			}
		}
		body, _ := json.Marshal(map[string]any{"matchers": fs.Args(), "startsAt": from, "endsAt": from.Add(*duration),
			"createdBy": *createdBy, "comment": *comment})
		var out struct{ ID string }
		if _, err := apiCall(ctx, "silences", http.MethodPost, api, body, &out); err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.ID)
		return nil
	case "expire":
		if fs.NArg() == 0 {
			return errors.New("silences expire: at least one silence ID is needed (see vigil silences ls)")
		}
		for _, id := range fs.Args() {
			if _, err := apiCall(ctx, "silences", http.MethodDelete, api+"/"+url.PathEscape(id), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "expired %s\n", id)
		}
		return nil
	}
	fmt.Fprint(stderr, silencesUsage)
	return fmt.Errorf("silences: unknown command %q", cmd)
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
