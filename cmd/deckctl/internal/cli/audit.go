package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// defaultAuditLimit is how many of the newest matching records deckctl audit shows.
const defaultAuditLimit = 200

func newAuditCmd(o *options) *cobra.Command {
	var since, who, node string
	var follow bool
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--since 24h|2026-12-01T10:00:00Z] [--who NAME|ROLE] [--node NODE] [-f]",
		Short: "Who did what: every call that changed something (refused and failed ones too), from deckctl, REST, the dashboard or a program",
		Long: `Lists the audit trail, oldest first: the time, the caller's credential and role, how the
call came (grpc or rest), the method, its target and nodes, and the result. Every call that
changes something is recorded before the controller answers it, with secrets, keys, tokens
and certificates redacted; the controllers also log each record as a line (msg=audit).
Admins and operators may read it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("--limit %d: give 0 (every record) or more", limit)
			}
			req := &apiv1.ListAuditEventsRequest{Who: who, Node: node}
			if !from.IsZero() {
				req.Since = timestamppb.New(from)
			}
			if !follow {
				return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
					events, err := listAudit(ctx, apiv1.NewAuditServiceClient(cc), req, limit)
					if err != nil {
						return err
					}
					return o.printAudit(events)
				})
			}
			return o.followAudit(cmd.Context(), req, limit)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records from this long ago (24h, 30m) or since this time (RFC 3339)")
	cmd.Flags().StringVar(&who, "who", "", "only the calls of this credential name or role (admin, operator, viewer, agent, token)")
	cmd.Flags().StringVar(&node, "node", "", "only the calls that concern this node")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records as they are made, until Ctrl-C")
	cmd.Flags().IntVar(&limit, "limit", defaultAuditLimit, "show the newest N matching records (0: all)")
	return cmd
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: give how long ago as a positive duration (24h) or a time (2026-12-01T10:00:00Z)", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %s: give a duration (24h, 30m) or an RFC 3339 time (2026-12-01T10:00:00Z)", s)
	}
	return t, nil
}

// listAudit returns the newest limit matching records (0: all), oldest first.
func listAudit(ctx context.Context, c apiv1.AuditServiceClient, req *apiv1.ListAuditEventsRequest, limit int) ([]*apiv1.AuditEvent, error) {
	var out []*apiv1.AuditEvent
	req.PageSize = 1000
	req.NewestFirst = limit > 0 // the newest pages only
	if limit > 0 && limit < 1000 {
		req.PageSize = int32(limit)
	}
	for {
		resp, err := c.ListAuditEvents(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetEvents()...)
		if limit > 0 && len(out) >= limit {
			out = out[:limit]
			break
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if req.NewestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

func (o *options) printAudit(events []*apiv1.AuditEvent) error {
	if done, err := o.printStructured(&apiv1.ListAuditEventsResponse{Events: events}); done {
		return err
	}
	if len(events) == 0 {
		fmt.Fprintln(o.out, "no audit records match")
		return nil
	}
	w := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tWHO\tVIA\tCALL\tTARGET\tNODES\tRESULT")
	for _, ev := range events {
		fmt.Fprintln(w, auditRow(ev))
	}
	return w.Flush()
}

// auditRow is one record as a table row.
func auditRow(ev *apiv1.AuditEvent) string {
	who := ev.GetSubject()
	switch {
	case who == "":
		who = "(no certificate)"
		if ev.GetRole() != "" {
			who = "(" + ev.GetRole() + ")"
		}
	case ev.GetRole() != "":
		who += " (" + ev.GetRole() + ")"
	}
	result := ev.GetCode()
	if r := strings.TrimPrefix(ev.GetReason(), "ERROR_REASON_"); r != "" && ev.GetCode() != "OK" {
		result += " " + r
	}
	return strings.Join([]string{
		ev.GetTime().AsTime().Local().Format("2006-01-02 15:04:05"), who, dash(ev.GetTransport()),
		shortMethod(ev.GetMethod()), dash(ev.GetTarget()), dash(strings.Join(ev.GetNodes(), ",")), result,
	}, "\t")
}

// shortMethod is "WorkflowService/CreateWorkflow" for "/deckhand.api.v1.WorkflowService/CreateWorkflow".
func shortMethod(m string) string {
	m = strings.TrimPrefix(m, "/")
	if i := strings.LastIndex(m, "/"); i > 0 {
		svc := m[:i]
		if j := strings.LastIndex(svc, "."); j >= 0 {
			svc = svc[j+1:]
		}
		return svc + "/" + m[i+1:]
	}
	return m
}

// followAudit prints the matching records, then the new ones as they are made: the watch
// opens first (its first message says so), then the list is read, so nothing made in
// between is missed; a record both listed and watched is printed once.
func (o *options) followAudit(parent context.Context, req *apiv1.ListAuditEventsRequest, limit int) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt)
	defer stop()
	c, err := o.dialWatch()
	if err != nil {
		return err
	}
	defer c.Close()
	svc := apiv1.NewAuditServiceClient(c)
	stream, err := svc.WatchAuditEvents(ctx, &apiv1.WatchAuditEventsRequest{Who: req.GetWho(), Node: req.GetNode()})
	if err != nil {
		return describe(err)
	}
	if _, err := stream.Recv(); err != nil { // the watch is open
		return describe(err)
	}
	lctx, cancel := context.WithTimeout(ctx, o.timeout)
	events, err := listAudit(lctx, svc, req, limit)
	cancel()
	if err != nil {
		return describe(err)
	}
	listed := make(map[string]bool, len(events))
	for _, ev := range events {
		listed[ev.GetId()] = true
	}
	jsonLines := o.output != "table"
	var w *tabwriter.Writer
	print := func(ev *apiv1.AuditEvent) error {
		if jsonLines {
			b, err := protojson.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(o.out, "%s\n", b)
			return err
		}
		fmt.Fprintln(w, auditRow(ev))
		return w.Flush()
	}
	w = tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
	if !jsonLines {
		fmt.Fprintln(w, "TIME\tWHO\tVIA\tCALL\tTARGET\tNODES\tRESULT")
	}
	for _, ev := range events {
		if err := print(ev); err != nil {
			return err
		}
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return describe(err)
		}
		if ev := resp.GetEvent(); ev == nil || listed[ev.GetId()] {
			delete(listed, ev.GetId()) // each listed ID comes by the watch once at most
			continue
		}
		if err := print(resp.GetEvent()); err != nil {
			return err
		}
	}
}
