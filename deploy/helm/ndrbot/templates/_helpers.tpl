{{/*
The templates keep to a small subset of Helm's functions, so that
deploy/deploy_test.go can render the chart without Helm (CI has no helm binary):
  include required fail default quote toYaml indent nindent trunc trimSuffix
  replace contains hasKey int sha256sum
and text/template's own (printf eq ne gt and or not len range with define).
A function outside that list makes the test fail: add it to the test too.
*/}}

{{- define "ndrbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ndrbot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ndrbot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ndrbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ndrbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ndrbot.labels" -}}
helm.sh/chart: {{ include "ndrbot.chart" . }}
{{ include "ndrbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ndrbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ndrbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ndrbot.image" -}}
{{- $repo := required "image.repository: the bot's image (ghcr.io/ndrbot/ndrbot, or one built from the repository's Dockerfile)" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the Secret's keys appear as files; the *_FILE settings point here. */}}
{{- define "ndrbot.secretDir" -}}
/run/secrets/ndrbot
{{- end }}

{{/* Whether the pod listens on any port (and so has a Service). */}}
{{- define "ndrbot.hasService" -}}
{{- if or (eq .Values.slack.mode "http") .Values.health.enabled .Values.watchNotifications.enabled }}true{{ end }}
{{- end }}

{{/*
Combinations the bot cannot run with fail here, before anything reaches the cluster.
*/}}
{{- define "ndrbot.validate" -}}
{{- $mode := .Values.slack.mode }}
{{- if and (ne $mode "socket") (ne $mode "http") }}
{{- fail (printf "slack.mode must be socket or http, not %q" $mode) }}
{{- end }}
{{- $driver := .Values.store.driver }}
{{- if and (ne $driver "sqlite") (ne $driver "postgres") }}
{{- fail (printf "store.driver must be sqlite or postgres, not %q" $driver) }}
{{- end }}
{{- if and (eq $driver "sqlite") (gt (int .Values.replicas) 1) }}
{{- fail "replicas > 1 needs store.driver postgres: a SQLite file serves one bot process, and its ReadWriteOnce volume one pod" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.health.enabled) }}
{{- fail "serviceMonitor.enabled needs health.enabled: /metrics is served on the health port" }}
{{- end }}
{{- if and .Values.ingress.enabled (ne $mode "http") }}
{{- fail "ingress.enabled is for slack.mode http: Socket Mode needs no inbound traffic" }}
{{- end }}
{{- if hasKey .Values.configFiles "ndrbot.yaml" }}
{{- fail "configFiles must not hold ndrbot.yaml: put the bot's settings under config" }}
{{- end }}
{{- end }}

{{/*
The settings the chart owns, as NDRBOT_* variables (they win over ndrbot.yaml).
Every name is a setting of config/config.go: the bot refuses unknown NDRBOT_* names.
*/}}
{{- define "ndrbot.env" -}}
{{- $dir := include "ndrbot.secretDir" . }}
{{- $keys := .Values.secrets.keys -}}
- name: NDRBOT_CONFIG
  value: /etc/ndrbot/ndrbot.yaml
- name: NDRBOT_SLACK_MODE
  value: {{ .Values.slack.mode | quote }}
- name: NDRBOT_SLACK_BOT_TOKEN_FILE
  value: {{ printf "%s/%s" $dir (required "secrets.keys.slackBotToken: the Secret's key holding the bot token (xoxb-…)" $keys.slackBotToken) | quote }}
{{- if eq .Values.slack.mode "socket" }}
- name: NDRBOT_SLACK_APP_TOKEN_FILE
  value: {{ printf "%s/%s" $dir (required "secrets.keys.slackAppToken: Socket Mode needs the app-level token (xapp-…)" $keys.slackAppToken) | quote }}
{{- else }}
- name: NDRBOT_SLACK_LISTEN
  value: {{ printf ":%d" (int .Values.slack.port) | quote }}
- name: NDRBOT_SLACK_SIGNING_SECRET_FILE
  value: {{ printf "%s/%s" $dir (required "secrets.keys.slackSigningSecret: HTTP mode needs the signing secret" $keys.slackSigningSecret) | quote }}
{{- end }}
- name: NDRBOT_STORE_DRIVER
  value: {{ .Values.store.driver | quote }}
{{- if eq .Values.store.driver "sqlite" }}
- name: NDRBOT_STORE_PATH
  value: /var/lib/ndrbot/ndrbot.db
{{- else }}
- name: NDRBOT_STORE_DSN_FILE
  value: {{ printf "%s/%s" $dir (required "secrets.keys.storeDsn: store.driver postgres reads its DSN from the Secret" $keys.storeDsn) | quote }}
{{- end }}
{{- with $keys.auditKey }}
- name: NDRBOT_STORE_AUDIT_KEY_FILE
  value: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- if .Values.playbooks }}
- name: NDRBOT_PLAYBOOKS_DIR
  value: /etc/ndrbot/playbooks
{{- end }}
{{- if .Values.health.enabled }}
- name: NDRBOT_SERVER_LISTEN
  value: {{ printf ":%d" (int .Values.health.port) | quote }}
{{- end }}
{{- if .Values.watchNotifications.enabled }}
- name: NDRBOT_WATCH_LISTEN
  value: {{ printf ":%d" (int .Values.watchNotifications.port) | quote }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}
