// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version the pinned
// Kubernetes release uses (etcd's own root module carries replace lines, so it cannot be
// installed with `go install`).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
