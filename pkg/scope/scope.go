// Package scope is keygate's scope grammar (SPEC §3). (Contract skeleton.)
package scope

type Scope struct{}

func Parse(s string) (*Scope, error)                         { panic("unimplemented") }
func (s *Scope) Allows(service, kind, operation string) bool { panic("unimplemented") }
func (s *Scope) Services() []string                          { panic("unimplemented") }
func (s *Scope) String() string                              { panic("unimplemented") }
