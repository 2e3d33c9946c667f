package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
)

// completionCmd prints a completion script generated from the command
// line's own model, so completions never drift from the commands and flags.
// It is static (no callback into keygate): sourcing it costs nothing and
// works without a database or server.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell: bash, zsh or fish."`
}

func (c *completionCmd) Run(e *env, kctx *kong.Context) error {
	nodes := commandNodes(kctx.Model.Node)
	switch c.Shell {
	case "bash":
		return writeBash(e.stdout, nodes)
	case "zsh":
		// zsh runs the bash script through its bashcompinit layer, which
		// ships with zsh; one generator then serves both shells.
		if _, err := fmt.Fprintln(e.stdout, "autoload -U +X bashcompinit && bashcompinit"); err != nil {
			return err
		}
		return writeBash(e.stdout, nodes)
	default:
		return writeFish(e.stdout, nodes)
	}
}

// commandNode is one command path ("" for keygate itself, "keys generate")
// with what may follow it.
type commandNode struct {
	path  string
	subs  []*kong.Node
	flags []*kong.Flag // its own and its parents', as kong accepts them
	args  []string     // fixed values of its positional arguments
}

// commandNodes lists every visible command path, parents before children.
func commandNodes(root *kong.Node) []commandNode {
	var out []commandNode
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		cn := commandNode{path: path}
		for _, p := range n.Positional {
			cn.args = append(cn.args, p.EnumSlice()...)
		}
		for _, group := range n.AllFlags(true) {
			cn.flags = append(cn.flags, group...)
		}
		for _, child := range n.Children {
			if child.Type == kong.CommandNode && !child.Hidden {
				cn.subs = append(cn.subs, child)
			}
		}
		out = append(out, cn)
		for _, child := range cn.subs {
			walk(child, strings.TrimSpace(path+" "+child.Name))
		}
	}
	walk(root, "")
	return out
}

// words is what bash offers after the command path: subcommands, then flags.
func (cn commandNode) words() []string {
	w := slices.Clone(cn.args)
	for _, s := range cn.subs {
		w = append(w, s.Name)
		w = append(w, s.Aliases...)
	}
	for _, f := range cn.flags {
		w = append(w, "--"+f.Name)
		if f.Short != 0 {
			w = append(w, "-"+string(f.Short))
		}
	}
	return w
}

// enumFlags maps each flag taking one of fixed values to those values, so
// `--type <TAB>` offers service, app and account. bash completes a flag's
// value by its name alone, so values of same-named flags are merged.
func enumFlags(nodes []commandNode) map[string][]string {
	out := map[string][]string{}
	for _, cn := range nodes {
		for _, f := range cn.flags {
			if f.Enum != "" && !f.IsBool() {
				out["--"+f.Name] = union(out["--"+f.Name], f.EnumSlice())
			}
		}
	}
	return out
}

// quotedPaths is every subcommand's path (not the root's), shell-quoted.
func quotedPaths(nodes []commandNode) []string {
	var paths []string
	for _, cn := range nodes[1:] {
		paths = append(paths, shellQuote(cn.path))
	}
	return paths
}

// writeBash writes a function that finds the command path among the words
// typed so far (skipping flags and their values, which match no command)
// and offers what may follow it. It avoids bash-only builtins and names zsh
// reserves (path, words), as zsh runs it too; candidates never hold spaces,
// so word splitting compgen's output is safe.
func writeBash(w io.Writer, nodes []commandNode) error {
	var b strings.Builder
	b.WriteString("# keygate completion for bash; source it: source <(keygate completion bash)\n")
	b.WriteString("_keygate() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmdpath='' next w i\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n")
	b.WriteString("\t\tw=${COMP_WORDS[i]}\n\t\t[[ $w == -* ]] && continue\n")
	b.WriteString("\t\tnext=${cmdpath:+$cmdpath }$w\n\t\tcase $next in\n")
	paths := quotedPaths(nodes)
	fmt.Fprintf(&b, "\t\t%s) cmdpath=$next ;;\n\t\tesac\n\tdone\n", strings.Join(paths, " | "))
	b.WriteString("\tlocal cands\n\tcase $prev in\n")
	enums := enumFlags(nodes)
	for _, name := range sortedKeys(enums) {
		fmt.Fprintf(&b, "\t%s) cands=%s ;;\n", name, shellQuote(strings.Join(enums[name], " ")))
	}
	b.WriteString("\t*)\n\t\tcase $cmdpath in\n")
	for _, cn := range nodes {
		fmt.Fprintf(&b, "\t\t%s) cands=%s ;;\n", shellQuote(cn.path), shellQuote(strings.Join(cn.words(), " ")))
	}
	b.WriteString("\t\tesac\n\t\t;;\n\tesac\n")
	b.WriteString("\tCOMPREPLY=($(compgen -W \"$cands\" -- \"$cur\"))\n}\n")
	b.WriteString("complete -o default -F _keygate keygate\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFish writes one `complete` line per subcommand and flag, each under
// the condition that the command path typed so far is its parent's.
func writeFish(w io.Writer, nodes []commandNode) error {
	var b strings.Builder
	b.WriteString("# keygate completion for fish; source it: keygate completion fish | source\n")
	b.WriteString("function __keygate_at --description 'the keygate command path typed so far is $argv'\n")
	b.WriteString("\tset -l path\n\tfor w in (commandline -opc)[2..-1]\n")
	b.WriteString("\t\tstring match -q -- '-*' $w; and continue\n")
	paths := quotedPaths(nodes)
	fmt.Fprintf(&b, "\t\tcontains -- (string join ' ' $path $w) %s; and set path $path $w\n", strings.Join(paths, " "))
	b.WriteString("\tend\n\ttest \"$path\" = \"$argv\"\nend\n")
	b.WriteString("complete -c keygate -f\n")
	for _, cn := range nodes {
		// Command names are plain words, so the path needs no quoting;
		// __keygate_at joins its arguments back with spaces.
		cond := strings.TrimSpace("__keygate_at " + cn.path)
		for _, s := range cn.subs {
			fmt.Fprintf(&b, "complete -c keygate -n %s -a %s -d %s\n", shellQuote(cond), shellQuote(s.Name), shellQuote(s.Help))
		}
		if len(cn.args) > 0 {
			fmt.Fprintf(&b, "complete -c keygate -n %s -a %s\n", shellQuote(cond), shellQuote(strings.Join(cn.args, " ")))
		}
		for _, f := range cn.flags {
			b.WriteString(fishFlag(cond, f))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fishFlag is the complete line of one flag: -r when it takes a value, -xa
// with the values when they are fixed, -F when it names a file.
func fishFlag(cond string, f *kong.Flag) string {
	line := fmt.Sprintf("complete -c keygate -n %s -l %s", shellQuote(cond), f.Name)
	if f.Short != 0 {
		line += " -s " + string(f.Short)
	}
	switch {
	case f.IsBool() || f.IsCounter():
	case f.Enum != "":
		line += " -xa " + shellQuote(strings.Join(f.EnumSlice(), " "))
	case f.Tag.Type == "path" || f.Tag.Type == "existingfile":
		line += " -rF"
	default:
		line += " -x"
	}
	return line + " -d " + shellQuote(f.Help) + "\n"
}

func union(a, b []string) []string {
	for _, v := range b {
		if !slices.Contains(a, v) {
			a = append(a, v)
		}
	}
	return a
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shellQuote single-quotes s; a quote inside is written '"'"', which bash
// and fish both read as one quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
