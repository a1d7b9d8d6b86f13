package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/vigil-tsdb/vigil/alerting"
)

const alertingUsage = `Usage: vigil alerting <command> [flags] [arguments]

The notifier's configuration (route tree, inhibition rules, receivers),
stored in etcd and applied by the leading notifier without a restart
(docs/alerting.md).

Commands:
  config upload FILE    validate FILE and store it (the leader applies it within a second)
  config show           the stored configuration, secrets shown as <secret>
  config check FILE...  validate offline, as upload does; nothing is stored
  status                which notifier leads, and the configuration it runs

Flags (before or after the command):
  -url   the node's HTTP API (default http://localhost:9009, or $VIGIL_URL)
`

// runAlerting is `vigil alerting ...`.
func runAlerting(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, args, err := subcommand("alerting", alertingUsage, args, stderr)
	if err != nil {
		return err
	}
	if cmd == "config" {
		if len(args) == 0 {
			fmt.Fprint(stderr, alertingUsage)
			return errors.New("alerting config: upload, show or check is needed")
		}
		cmd, args = "config "+args[0], args[1:]
	}
	fs := flag.NewFlagSet("vigil alerting "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := urlFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkURL("alerting", *base); err != nil {
		return err
	}
	api := strings.TrimSuffix(*base, "/") + "/api/v1/alerting/"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch cmd {
	case "config check":
		if fs.NArg() == 0 {
			return errors.New("alerting config check: a file is needed")
		}
		for _, f := range fs.Args() {
			if _, err := alerting.LoadRoutingFile(f); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: valid\n", f)
		}
		return nil
	case "config upload":
		if fs.NArg() != 1 {
			return errors.New("alerting config upload: exactly one file is needed")
		}
		data, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("alerting config upload: %w", err)
		}
		if _, err := alerting.ParseRoutingConfig(data); err != nil { // the file's name in the message
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		var out struct {
			Revision int64
			Changed  bool
		}
		if _, err := apiCall(ctx, "alerting config upload", http.MethodPut, api+"config", data, &out); err != nil {
			return err
		}
		if out.Changed {
			fmt.Fprintf(stdout, "stored at revision %d\n", out.Revision)
		} else {
			fmt.Fprintf(stdout, "unchanged (revision %d)\n", out.Revision)
		}
		return nil
	case "config show":
		var sc alerting.StoredConfig
		if _, err := apiCall(ctx, "alerting config show", http.MethodGet, api+"config", nil, &sc); err != nil {
			return err
		}
		switch {
		case sc.Revision == 0:
			return errors.New("alerting config show: no configuration is stored (vigil alerting config upload FILE)")
		case sc.Error != "":
			return fmt.Errorf("alerting config show: the stored value (revision %d) is invalid, the notifier keeps the previous one: %s", sc.Revision, sc.Error)
		}
		fmt.Fprintf(stdout, "# revision %d; secrets are shown as <secret>\n%s", sc.Revision, sc.YAML)
		return nil
	case "status":
		var st struct {
			Leading        bool
			Leader         string
			Configured     bool
			ConfigRevision int64
		}
		if _, err := apiCall(ctx, "alerting status", http.MethodGet, api+"status", nil, &st); err != nil {
			return err
		}
		leader := st.Leader
		if leader == "" {
			leader = "none"
		}
		fmt.Fprintf(stdout, "leader: %s\nthis node leads: %t\n", leader, st.Leading)
		if st.Leading {
			if st.Configured {
				fmt.Fprintf(stdout, "configuration in force: revision %d\n", st.ConfigRevision)
			} else {
				fmt.Fprintln(stdout, "configuration in force: none (alerts are dropped)")
			}
		}
		return nil
	}
	fmt.Fprint(stderr, alertingUsage)
	return fmt.Errorf("alerting: unknown command %q", cmd)
}
