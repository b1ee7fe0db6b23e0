// Alerts on what the app's telemetry says (shared/telemetry.py, exports/events.py): an
// action group that e-mails the operators, and one log alert rule per condition. Each rule's
// description says what to do; docs/OPERATIONS.md says it at length. The queries run against
// Application Insights (classic table names: traces, requests); tests/ops/test_kql.py runs
// them on telemetry captured from the app, except the host-made `requests` and poison lines.
//
// Application Insights is created by monitoring.bicep; main.bicep deploys this module after it.

@description('Application Insights the rules query (created by monitoring.bicep).')
param appInsightsName string

@description('Action group name.')
param actionGroupName string

@description('Azure region of the alert rules.')
param location string

@description('Tags of every resource.')
param tags object

@description('E-mail addresses the alerts are sent to (main.bicep: alertEmails; empty: the alerts fire without notifying anyone).')
param alertEmails array

@description('Rule name prefix (main.bicep: the environment name).')
param namePrefix string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'sa-exports'
    enabled: true
    emailReceivers: [for (address, i) in alertEmails: {
      name: 'operator-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

// Failure codes that mean something is wrong on our side or between services, not with what
// the user asked for (subject_set_empty, token_expired, ml_failed ... are answers to users).
var operationalCodes = '"internal_error", "panoptes_unavailable", "ml_rejected", "deadline_exceeded", "ml_task_not_found"'

var rules = [
  {
    name: 'exports-failed-operational'
    displayName: 'Exports failed with an operational error code'
    severity: 2
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    description: 'At least one export failed in the last hour with internal_error, panoptes_unavailable, ml_rejected, deadline_exceeded or ml_task_not_found. Run the runbook query "Failures by code" (docs/OPERATIONS.md), then "One export\'s whole story" for an export id it lists: internal_error is a bug or our storage (look for exceptions), panoptes_unavailable is a Panoptes outage longer than TRANSIENT_RETRY_HOURS, ml_rejected is the ML service refusing the caller id or the manifest (check SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID with its operators), deadline_exceeded and ml_task_not_found are ML tasks that stopped or vanished (ask the ML service\'s operators). Users were told to export again.'
    query: 'traces\n| where tostring(customDimensions.event) == "export_finished" and tostring(customDimensions.status) == "failed"\n| extend error_code = tostring(customDimensions.error_code), export_id = tostring(customDimensions.export_id)\n| where error_code in (${operationalCodes})\n| project timestamp, error_code, export_id'
  }
  {
    name: 'export-message-poisoned'
    displayName: 'An export message reached the poison queue'
    severity: 1
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    description: 'A queue message failed five times and was moved to subject-assistant-exports-poison: a bug or an outage of our own storage, never a Panoptes or ML outage (those are retried). Find the export with the runbook query "One export\'s whole story" and its exception; fix and deploy; then re-drive what is still waiting with `python -m ops redrive` (docs/OPERATIONS.md, "Re-driving poison messages"). The poison handler fails an abandoned export at once, so usually only exports that were still active can be re-driven.'
    query: 'union\n    (traces | where tostring(customDimensions.event) == "export_poisoned" | project timestamp, message, export_id = tostring(customDimensions.export_id)),\n    (traces | where message has "MaxDequeueCount" and message has "subject-assistant-exports-poison" | project timestamp, message, export_id = ""),\n    (requests | where name == "fail_poisoned_export" | project timestamp, message = name, export_id = "")'
  }
  {
    name: 'ml-service-unreachable'
    displayName: 'The ML service did not answer three poll ticks in a row'
    severity: 2
    evaluationFrequency: 'PT10M'
    windowSize: 'PT1H'
    description: 'The last three poll ticks that had ML tasks to poll got no answer for any of them (unreachable, timeouts or 5xx). Exports wait; nothing fails until ML_TASK_DEADLINE_DAYS. Run `python -m ops ready` to see whether the ML service answers from here, check SUBJECT_ASSISTANT_ML_SERVICE_URL, and tell the ML service\'s operators (docs/OPERATIONS.md, "ML service unreachable"). The alert resolves itself at the first tick that gets answers. Assumes ticks at most 15 minutes apart (ML_POLL_SCHEDULE).'
    query: 'traces\n| where tostring(customDimensions.event) == "poll_tick"\n| extend polled = toint(customDimensions.ml_polled), unanswered = toint(customDimensions.ml_unavailable)\n| where polled > 0\n| top 3 by timestamp desc\n| summarize ticks = count(), down = countif(unanswered == polled)\n| where ticks == 3 and down == 3'
  }
  {
    name: 'http-5xx-rate'
    displayName: 'HTTP 5xx answers above 2%'
    severity: 1
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    description: 'More than 2% of the HTTP requests of the last 15 minutes (and at least 5) were answered with a 5xx. Look at the runbook query "Recent exceptions" and the failing requests in Application Insights (Failures); service_misconfigured names the bad setting in the log, internal_error comes with an exception; check `python -m ops ready` for storage, Panoptes (502 panoptes_unavailable) and the ML service (docs/OPERATIONS.md, "HTTP 5xx").'
    query: 'requests\n| summarize total = count(), failed = countif(toint(resultCode) >= 500)\n| where failed >= 5 and failed * 100.0 / total > 2'
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for rule in rules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: rule.evaluationFrequency
    windowSize: rule.windowSize
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        operators.id
      ]
    }
  }
}]

output actionGroupName string = operators.name
