// Package etcdtest is test support for packages that keep state in etcd
// (rules, alerting, collector): it runs one embedded etcd for a package's
// tests (Start, Run), builds clients that reconnect quickly (NewClient), and
// puts a TCP proxy in front of etcd that can cut every connection to
// simulate a lost or unreachable etcd (Proxy).
//
// Only _test.go files import it; it imports no package of the project.
package etcdtest
