// Command sluice-ferretdb runs FerretDB (a MongoDB-wire server) with its SQLite
// backend for sluice's tests. It exists because `go install` of FerretDB's own
// command panics without the version files its release build generates; the
// embedding package has no such requirement.
//
// Usage:
//
//	sluice-ferretdb serve -data DIR [-listen 127.0.0.1:PORT] [-uri-file FILE] [-log-level L]
//	sluice-ferretdb ping -uri mongodb://127.0.0.1:PORT/ [-timeout 2s]
//
// serve listens on 127.0.0.1 only. With port 0 the kernel picks a free port;
// the bound URI is written to -uri-file (atomically) once the listener is up,
// so the calling script learns the port without a race. SIGTERM/SIGINT stop the
// server cleanly (SQLite files are closed).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sluice-ferretdb serve|ping [flags]")
		os.Exit(2)
	}

	var err error

	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "ping":
		err = ping(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}

	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-ferretdb:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dataDir := fs.String("data", "", "directory for the SQLite databases (required)")
	listen := fs.String("listen", "127.0.0.1:0", "TCP address; host must be 127.0.0.1")
	uriFile := fs.String("uri-file", "", "write the mongodb:// URI here once listening")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")

	if err := fs.Parse(args); err != nil {
		return err
	}

	if *dataDir == "" {
		return errors.New("-data is required")
	}

	// Only loopback: tests must never expose the store to the network.
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("bad -listen %q: %w", *listen, err)
	}

	if host != "127.0.0.1" {
		return fmt.Errorf("-listen host must be 127.0.0.1, got %q", host)
	}

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}

	if err = os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	var level slog.Level
	if err = level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/", // the SQLite handler wants a directory URI with a trailing slash
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan struct{})

	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()

	// MongoDBURI blocks until Run has bound the listener.
	uri := f.MongoDBURI()
	fmt.Fprintln(os.Stderr, "sluice-ferretdb: listening, uri="+uri)

	if *uriFile != "" {
		tmp := *uriFile + ".tmp"
		if err = os.WriteFile(tmp, []byte(uri+"\n"), 0o644); err == nil {
			err = os.Rename(tmp, *uriFile)
		}

		if err != nil {
			stop()
			<-done

			return fmt.Errorf("writing -uri-file: %w", err)
		}
	}

	<-done
	fmt.Fprintln(os.Stderr, "sluice-ferretdb: stopped")

	return nil
}

func ping(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	uri := fs.String("uri", "", "mongodb:// URI (required)")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")

	if err := fs.Parse(args); err != nil {
		return err
	}

	if !strings.HasPrefix(*uri, "mongodb://") {
		return errors.New("-uri must be a mongodb:// URI")
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	opts := options.Client().ApplyURI(*uri).SetServerSelectionTimeout(*timeout).SetConnectTimeout(*timeout)

	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return err
	}

	defer client.Disconnect(context.Background()) //nolint:errcheck // best effort

	var res bson.M
	if err = client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Decode(&res); err != nil {
		return err
	}

	fmt.Println("ok")

	return nil
}
