package main

import (
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
	cmd, args, err := subcommand("silences", silencesUsage, args, stderr)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("vigil silences "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := urlFlag(fs)
	duration := fs.Duration("duration", 2*time.Hour, "how long the silence lasts")
	start := fs.String("start", "", "when it starts, RFC 3339 (default now)")
	comment := fs.String("comment", "", "why (required for add)")
	createdBy := fs.String("created-by", os.Getenv("USER"), "who")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkURL("silences", *base); err != nil {
		return err
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
