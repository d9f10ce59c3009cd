# cmdlets.psd1 - the Exchange cmdlets and parameters ndrbot's playbooks call over
# remote PowerShell (http(s)://exNN/PowerShell, configuration Microsoft.Exchange).
#
# New-NdrBotRoles.ps1 reads this file and builds custom management roles that hold
# exactly these cmdlets and parameters; a Go test checks it against the playbooks.
# Format (keep it simple for that test): tier -> cmdlet -> parameter names, one
# cmdlet per line, single-quoted names.
#   Read   -> role group "NdrBot Readers"        (diagnosis; read-only)
#   Relief -> role group "NdrBot Relievers"      (approved reliefs; optional)
#   Admin  -> role group "NdrBot Admin Reliefs"  (only with -IncludeAdmin)
# PowerShell common parameters (Confirm, WhatIf, ErrorAction, WarningAction, ...)
# are not listed: the script keeps those that the parent role's entry has.
# Get-Service / Restart-Service are not Exchange cmdlets: they live on the JEA
# endpoint (deploy/jea/NdrBot.psrc).
@{
    Read = @{
        'Get-Queue' = @('Server', 'Identity', 'ResultSize')
        'Get-Message' = @('Queue', 'ResultSize')
        'Get-MessageTrackingLog' = @('Server', 'Start', 'End', 'EventId', 'ResultSize', 'Sender', 'Recipients')
        'Get-ServerComponentState' = @('Identity', 'Component')
        'Get-TransportService' = @('Identity')
        'Get-SendConnector' = @('Identity')
        'Get-ReceiveConnector' = @('Server', 'Identity')
        'Get-ExchangeCertificate' = @('Server')
        'Get-Mailbox' = @('Identity')
        'Get-ThrottlingPolicy' = @('Identity')
        'Get-ThrottlingPolicyAssociation' = @('Identity', 'ResultSize')
        'Get-AcceptedDomain' = @()
        'Get-ExchangeServer' = @('Identity')
        'Test-Mailflow' = @('Identity', 'TargetEmailAddress', 'ExecutionTimeout')
    }
    Relief = @{
        'Set-ThrottlingPolicy' = @('Identity', 'RecipientRateLimit', 'MessageRateLimit')
        'Retry-Queue' = @('Identity')
        'Suspend-Queue' = @('Identity')
        'Resume-Queue' = @('Identity')
        'Set-TransportService' = @('Identity', 'MaxPerDomainOutboundConnections', 'MaxOutboundConnections')
        'Set-SendConnector' = @('Identity', 'TlsCertificateName')
        'Set-ReceiveConnector' = @('Identity', 'TlsCertificateName')
    }
    Admin = @{
        'Set-ServerComponentState' = @('Identity', 'Component', 'State', 'Requester')
    }
}
