package commands

import "strings"

// ArgsFromWords builds Args from words a shell has already split and unquoted (a
// terminal's argv): each word containing = is key=value split at the first =, the
// value taken verbatim; other words are positional. Keys follow ParseArgs's rules.
func ArgsFromWords(words []string) (Args, error) {
	a := Args{Named: map[string]string{}}
	total := 0
	for _, w := range words {
		total += len(w) + 1
		if total > MaxArgsBytes {
			return Args{}, argsErrorf("the arguments are too long: more than %d bytes", MaxArgsBytes)
		}
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			a.Positional = append(a.Positional, w)
			continue
		}
		key, err := argsKey(k, w)
		if err != nil {
			return Args{}, err
		}
		if _, dup := a.Named[key]; dup {
			return Args{}, argsErrorf("%s is given twice", key)
		}
		a.Named[key] = v
		a.Order = append(a.Order, key)
	}
	return a, nil
}
