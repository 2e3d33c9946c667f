package main
import (
 _ "github.com/alecthomas/kong"
 _ "go.yaml.in/yaml/v3"
 _ "github.com/fsnotify/fsnotify"
 _ "github.com/google/go-cmp/cmp"
 _ "golang.org/x/sync/singleflight"
 _ "google.golang.org/grpc"
 _ "google.golang.org/grpc/health"
 _ "google.golang.org/protobuf/encoding/protojson"
 _ "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
 _ "github.com/prometheus/client_golang/prometheus"
)
func main(){}
