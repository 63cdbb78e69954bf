package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/freightcast/freightcast/internal/natsauth"
)

// runNATSAuth is `freightcast nats-auth`: the platform engineer's tool for NATS credentials
// (docs/security.md, "NATS"). It runs on the engineer's machine, never in the cluster: the
// signing key it keeps is what lets a pipeline onto NATS.
func runNATSAuth(_ context.Context, args []string) error {
	return natsAuth(os.Stdout, args)
}

const natsAuthUsage = `usage:
  freightcast nats-auth init --dir DIR [--store-limit QUANTITY]
      make the operator, accounts and signing key of an install in DIR, the servers'
      authorization config (DIR/auth.conf) and the Freightcast operator's credentials
      (DIR/operator.creds)
  freightcast nats-auth pipeline --dir DIR --namespace NS --name NAME
      print the credentials of pipeline NS/NAME: its own subjects, stream, consumer and bucket
  freightcast nats-auth operator --dir DIR
      print new credentials for the Freightcast operator`

func natsAuth(out io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New(natsAuthUsage)
	}
	fs := flag.NewFlagSet("nats-auth "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "the directory of the install's keys (required)")
	switch args[0] {
	case "init":
		limit := fs.String("store-limit", "", "the Freightcast account's JetStream storage limit across all servers (e.g. 27Gi: the servers' max_file_store times their number); empty leaves it to the servers")
		if err := parseAll(fs, args[1:]); err != nil {
			return err
		}
		return natsAuthInit(out, *dir, *limit)
	case "pipeline":
		namespace := fs.String("namespace", "", "the pipeline's namespace (required)")
		name := fs.String("name", "", "the pipeline's name (required)")
		if err := parseAll(fs, args[1:]); err != nil {
			return err
		}
		if *namespace == "" || *name == "" {
			return errors.New("--namespace and --name are required")
		}
		return natsAuthIssue(out, *dir, func(k *natsauth.Keys) ([]byte, error) { return k.IssuePipeline(*namespace, *name) })
	case "operator":
		if err := parseAll(fs, args[1:]); err != nil {
			return err
		}
		return natsAuthIssue(out, *dir, (*natsauth.Keys).IssueOperator)
	}
	return fmt.Errorf("unknown nats-auth command %q\n%s", args[0], natsAuthUsage)
}

func parseAll(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if fs.Lookup("dir").Value.String() == "" {
		return errors.New("--dir is required")
	}
	return nil
}

func natsAuthInit(out io.Writer, dir, limit string) error {
	storeLimit := int64(-1)
	if limit != "" {
		q, err := resource.ParseQuantity(limit)
		if err != nil || q.Value() <= 0 {
			return fmt.Errorf("--store-limit must be a positive quantity such as 27Gi, got %q", limit)
		}
		storeLimit = q.Value()
	}
	keys, err := natsauth.New(storeLimit)
	if err != nil {
		return err
	}
	if err := keys.Save(dir); err != nil {
		return err
	}
	creds, err := keys.IssueOperator()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, natsauth.FileOperatorCreds), creds, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, `Wrote the keys of a NATS install to %[1]s. Keep the *.nk files secret: signing.nk issues credentials.

1. The servers trust them (the chart renders %[1]s/auth.conf into nats.conf):
     helm upgrade --install freightcast charts/freightcast -n freightcast-system --reuse-values \
       --set nats.auth.enabled=true --set-file nats.auth.config=%[1]s/auth.conf
2. The Freightcast operator connects with its own credentials:
     kubectl -n freightcast-system create secret generic freightcast-nats --from-file=creds=%[1]s/operator.creds
3. Each pipeline gets credentials for its own subjects only:
     freightcast nats-auth pipeline --dir %[1]s --namespace NS --name NAME > NAME.creds
     kubectl -n NS create secret generic NAME-nats --from-file=creds=NAME.creds
   and names the Secret in spec.queue.credentials (docs/security.md, "NATS").
`, dir)
	return nil
}

func natsAuthIssue(out io.Writer, dir string, issue func(*natsauth.Keys) ([]byte, error)) error {
	keys, err := natsauth.Load(dir)
	if err != nil {
		return err
	}
	creds, err := issue(keys)
	if err != nil {
		return err
	}
	_, err = out.Write(creds)
	return err
}
