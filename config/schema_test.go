package config

import (
	"reflect"
	"testing"
)

func TestSchemaCoversConfig(t *testing.T) {
	t.Parallel()
	// A section added with a type the loader cannot read must fail here, not be ignored.
	if _, err := configSchema(); err != nil {
		t.Fatal(err)
	}
	type bad struct {
		Hooks []struct{ URL string } `mapstructure:"hooks"`
	}
	if _, err := buildSchema(reflect.TypeFor[bad](), "bad"); err == nil {
		t.Error("a []struct field was accepted")
	}
	type untagged struct{ Level string }
	if _, err := buildSchema(reflect.TypeFor[untagged](), "untagged"); err == nil {
		t.Error("a field without a mapstructure key was accepted")
	}
}
