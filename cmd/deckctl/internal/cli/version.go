package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/deckhandhq/deckhand/internal/version"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// versionReport is what deckctl version prints (-o json|yaml prints it as is).
type versionReport struct {
	Client      string             `json:"client"`
	Controllers []componentVersion `json:"controllers,omitempty"`
	Agents      []componentVersion `json:"agents,omitempty"`
	// Warnings name every combination Deckhand does not support (version.Skew).
	Warnings []string `json:"warnings,omitempty"`
}

type componentVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func newVersionCmd(o *options) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the builds of deckctl, every controller and every agent, and warn when they are skewed",
		Long: "Show the builds of deckctl, every controller replica and every node's agent, and a warning\n" +
			"for each combination Deckhand does not support: controllers run one version; an agent runs\n" +
			"the controllers' minor version or the one before, never a newer one; deckctl is within one\n" +
			"minor version of the controllers; a development build matches only builds of its revision.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := versionReport{Client: version.Get().String()}
			if clientOnly {
				return o.printVersion(rep)
			}
			err := o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				members, err := apiv1.NewMemberServiceClient(cc).ListMembers(ctx, &apiv1.ListMembersRequest{})
				if err != nil {
					return err
				}
				for _, m := range members.GetMembers() {
					rep.Controllers = append(rep.Controllers, componentVersion{Name: m.GetId(), Version: m.GetVersion()})
				}
				return allPages(func(token string) (string, error) {
					page, err := apiv1.NewNodeServiceClient(cc).ListNodes(ctx, &apiv1.ListNodesRequest{PageToken: token})
					for _, n := range page.GetNodes() {
						rep.Agents = append(rep.Agents, componentVersion{Name: n.GetName(), Version: n.GetAgentVersion()})
					}
					return page.GetNextPageToken(), err
				})
			})
			if err != nil {
				// The client's own build is still worth printing, as kubectl version does.
				_ = o.printVersion(rep)
				return err
			}
			rep.Warnings = version.Skew(version.Component{Name: "deckctl", Build: rep.Client}, components(rep.Controllers), components(rep.Agents))
			return o.printVersion(rep)
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "show only deckctl's own build (no controller needed)")
	return cmd
}

func components(cs []componentVersion) []version.Component {
	out := make([]version.Component, len(cs))
	for i, c := range cs {
		out[i] = version.Component{Name: c.Name, Build: c.Version}
	}
	return out
}

// printVersion prints the report: a table of builds with agents grouped by build, then the
// warnings.
func (o *options) printVersion(rep versionReport) error {
	if done, err := o.printValue(rep); done {
		return err
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tNAME\tVERSION")
	fmt.Fprintf(tw, "deckctl\t-\t%s\n", rep.Client)
	for _, c := range rep.Controllers {
		fmt.Fprintf(tw, "controller\t%s\t%s\n", c.Name, unknownBuild(c.Version, "unknown: did not answer"))
	}
	// One row per agent build: a cluster of hundreds of nodes stays a few lines.
	var builds []string
	byBuild := map[string][]string{}
	for _, a := range rep.Agents {
		if _, ok := byBuild[a.Version]; !ok {
			builds = append(builds, a.Version)
		}
		byBuild[a.Version] = append(byBuild[a.Version], a.Name)
	}
	for _, b := range builds {
		fmt.Fprintf(tw, "agent\t%s\t%s\n", nodeNames(byBuild[b]), unknownBuild(b, "unknown: not reported yet"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(o.out, "WARNING: %s\n", w)
	}
	return nil
}

func unknownBuild(build, why string) string {
	if build == "" {
		return why
	}
	return build
}

// nodeNames lists a few names and how many more.
func nodeNames(ns []string) string {
	const most = 3
	if len(ns) <= most {
		return strings.Join(ns, ",")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ns[:most], ","), len(ns)-most)
}
