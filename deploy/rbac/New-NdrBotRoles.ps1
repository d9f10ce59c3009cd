<#
.SYNOPSIS
    Creates ndrbot's custom Exchange RBAC roles and the role groups
    "NdrBot Readers", "NdrBot Relievers" (and, on request, "NdrBot Admin Reliefs").

.DESCRIPTION
    Run in the Exchange Management Shell (Exchange Server 2016, 2019 or SE) as a
    member of Organization Management (the Role Management role is needed).

    The cmdlets and parameters come from cmdlets.psd1 beside this script
    (tier -> cmdlet -> parameters). For every cmdlet the script finds the built-in
    role that holds it ("parent"), then for each parent it creates one child role
        New-ManagementRole -Name "NdrBot <Tier> - <Parent>" -Parent "<Parent>"
    and trims it:
        - removes every role entry except the bot's cmdlets
          (Get-ManagementRoleEntry "<role>\*" ... Remove-ManagementRoleEntry);
        - removes every parameter the bot does not use
          (Set-ManagementRoleEntry "<role>\<cmdlet>" -Parameters ... -RemoveParameter),
          keeping the PowerShell common parameters the parent's entry has.
    A custom role is always a subset of its parent: it cannot receive a cmdlet or
    parameter that the parent lacks, and one role has exactly one parent. That is
    why one tier becomes several child roles (one per parent) gathered in one role
    group. Sources (Microsoft Learn / Exchange docs):
      [TQ]  "Transport Queues role" (Exchange 2013 Help, Dd876955) > "Management role
            customization": "You can't add additional role entries to the new role
            because it can only contain the role entries on the parent built-in role."
      [SMRE] "Set-ManagementRoleEntry" (learn.microsoft.com/powershell/module/exchange/
            set-managementroleentry): "If you want to add parameters to a role entry,
            the parameters must exist in the role entry in the parent management role
            ... You can't change role entries associated with built-in roles."
      [CRE] "Change a role entry" (Exchange 2013 Help): without -AddParameter or
            -RemoveParameter, -Parameters REPLACES the list - this script always
            passes one of the two.
      [RRE] "Remove a role entry from a role" (Exchange 2013 Help): the
            Get-ManagementRoleEntry "<role>\<wildcard>" | Remove-ManagementRoleEntry form.
      [GMR] "Get-ManagementRole" -Cmdlet / -CmdletParameters: roles holding a cmdlet
            with all the given parameters (used to find and check parents).

    Idempotent: a second run creates nothing that exists, re-trims, adds back
    parameters the bot now needs, and removes NdrBot child roles of a tier that are
    no longer needed. -WhatIf shows every change. Undo with Remove-NdrBotRoles.ps1.

    NOT VERIFIED AGAINST A LIVE SERVER: nobody had an Exchange organisation while
    this was written. In particular the cmdlet -> built-in role table below is our
    best knowledge, checked at run time with Get-ManagementRole -Cmdlet; the script
    prints which parent it used for every cmdlet - review that output.

.PARAMETER DataFile
    The cmdlet list. Default: cmdlets.psd1 beside this script.

.PARAMETER Prefix
    Name prefix of roles and role groups. Default NdrBot.

.PARAMETER Member
    Accounts or groups to add to the created role groups (e.g. CONTOSO\svc-ndrbot).

.PARAMETER SkipRelief
    Do not create the Relief roles nor "NdrBot Relievers" (diagnosis only).

.PARAMETER IncludeAdmin
    Also create the Admin roles and "NdrBot Admin Reliefs" (Set-ServerComponentState).

.EXAMPLE
    .\New-NdrBotRoles.ps1 -WhatIf
    .\New-NdrBotRoles.ps1 -Member 'CONTOSO\svc-ndrbot'
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [string] $DataFile = (Join-Path $PSScriptRoot 'cmdlets.psd1'),
    [ValidatePattern('^[A-Za-z][A-Za-z0-9]{0,15}$')]
    [string] $Prefix = 'NdrBot',
    [string[]] $Member = @(),
    [switch] $SkipRelief,
    [switch] $IncludeAdmin
)

$ErrorActionPreference = 'Stop'

foreach ($needed in 'New-ManagementRole', 'Get-ManagementRoleEntry', 'Set-ManagementRoleEntry', 'New-RoleGroup') {
    if (-not (Get-Command $needed -ErrorAction SilentlyContinue)) {
        throw "$needed is not available: run this in the Exchange Management Shell as a member of Organization Management."
    }
}

$data = Import-PowerShellDataFile -LiteralPath $DataFile

# Common parameters kept on every entry when the parent has them. They change how a
# cmdlet reports, not what it may touch; the bot's reliefs pass -Confirm:$false.
$CommonParameters = @(
    'Confirm', 'WhatIf', 'Debug', 'Verbose', 'ErrorAction', 'ErrorVariable',
    'WarningAction', 'WarningVariable', 'InformationAction', 'InformationVariable',
    'OutBuffer', 'OutVariable', 'PipelineVariable'
)

# Tier -> role group. Role group names are what the README and the account note use.
$Tiers = [ordered]@{
    Read   = @{ Group = "$Prefix Readers";       Description = 'ndrbot: read-only Exchange cmdlets for diagnosis (deploy/rbac/cmdlets.psd1, tier Read).' }
    Relief = @{ Group = "$Prefix Relievers";     Description = 'ndrbot: relief cmdlets run after human approval (deploy/rbac/cmdlets.psd1, tier Relief).' }
    Admin  = @{ Group = "$Prefix Admin Reliefs"; Description = 'ndrbot: admin-only reliefs such as Set-ServerComponentState (deploy/rbac/cmdlets.psd1, tier Admin).' }
}

# Cmdlet -> built-in roles to try as parent, in order. The first one that holds
# the cmdlet with every parameter the bot needs wins; if none does, the script asks
# Exchange (Get-ManagementRole -Cmdlet ... -CmdletParameters ...) and uses what it
# finds, with a warning. Role descriptions quoted from "Built-in management roles"
# (Exchange 2013 Help, Dd638077) and the individual role pages:
#   Transport Queues        "manage message queues on an individual transport server"
#   Message Tracking        "track messages in an organization"
#   View-Only Configuration "view all the non-recipient Exchange configuration
#                            settings ... server configuration, transport configuration"
#   View-Only Recipients    "view the configuration of recipients, such as mailboxes"
#   Recipient Policies      "manage recipient policies, such as throttling policies"
#   Exchange Servers        "Modify transport configuration on Mailbox and Client
#                            Access servers"
#   Monitoring              "monitor Exchange services and component availability"
# Microsoft does not publish a per-cmdlet table for on-premises roles; the way to
# know is `Get-ManagementRoleEntry "*\<cmdlet>"` in your organisation
# ("Find the permissions required to run any Exchange cmdlet", learn.microsoft.com/
# powershell/exchange/find-exchange-cmdlet-permissions). Confidence per line:
$ParentCandidates = @{
    # Read
    'Get-Queue'                       = @('Transport Queues', 'View-Only Configuration')      # sure of Transport Queues
    'Get-Message'                     = @('Transport Queues', 'View-Only Configuration')      # likely (Transport Queues: "manage message queues")
    'Get-MessageTrackingLog'          = @('Message Tracking', 'View-Only Configuration')      # sure of Message Tracking
    'Get-ServerComponentState'        = @('View-Only Configuration', 'Monitoring', 'Exchange Servers')  # UNSURE which
    'Get-TransportService'            = @('View-Only Configuration', 'Exchange Servers')      # likely
    'Get-SendConnector'               = @('View-Only Configuration', 'Send Connectors')       # likely
    'Get-ReceiveConnector'            = @('View-Only Configuration', 'Receive Connectors')    # likely
    'Get-ExchangeCertificate'         = @('View-Only Configuration', 'Exchange Server Certificates')  # UNSURE which (Exchange Server Certificates: "manage Exchange server certificates")
    'Get-Mailbox'                     = @('View-Only Recipients', 'Mail Recipients')          # likely
    'Get-ThrottlingPolicy'            = @('View-Only Configuration', 'Recipient Policies')    # likely
    'Get-ThrottlingPolicyAssociation' = @('View-Only Recipients', 'View-Only Configuration', 'Recipient Policies')  # UNSURE which
    'Get-AcceptedDomain'              = @('View-Only Configuration', 'Remote and Accepted Domains')  # likely
    'Get-ExchangeServer'              = @('View-Only Configuration', 'Exchange Servers')      # likely
    'Test-Mailflow'                   = @('Monitoring', 'Exchange Servers')                   # UNSURE which; sends a test message, changes no setting
    # Relief
    'Set-ThrottlingPolicy'            = @('Recipient Policies')                               # per the role's description
    'Retry-Queue'                     = @('Transport Queues')                                 # sure
    'Suspend-Queue'                   = @('Transport Queues')                                 # sure
    'Resume-Queue'                    = @('Transport Queues')                                 # sure
    'Set-TransportService'            = @('Exchange Servers')                                 # per the role's description
    'Set-SendConnector'               = @('Send Connectors')                                  # per the role's description ("manage Send connectors")
    'Set-ReceiveConnector'            = @('Receive Connectors')                               # per the role's description ("manage Receive connectors")
    # Admin
    'Set-ServerComponentState'        = @('Exchange Servers', 'Monitoring')                   # UNSURE which
}

function Test-Superset([object[]] $Have, [string[]] $Want) {
    foreach ($w in $Want) { if (@($Have) -notcontains $w) { return $false } }
    return $true
}

function Get-EntryParameters([string] $Role, [string] $Cmdlet) {
    $entry = Get-ManagementRoleEntry -Identity "$Role\$Cmdlet" -ErrorAction SilentlyContinue
    if (-not $entry) { return $null }
    # The comma keeps an empty list from turning into $null on return.
    return , @($entry.Parameters | ForEach-Object { "$_" })
}

function Resolve-ParentRole([string] $Cmdlet, [string[]] $Parameters, [string] $Tier) {
    foreach ($candidate in @($ParentCandidates[$Cmdlet])) {
        if (-not $candidate) { continue }
        $have = Get-EntryParameters $candidate $Cmdlet
        if ($null -ne $have -and (Test-Superset $have $Parameters)) {
            return [pscustomobject]@{ Parent = $candidate; Discovered = $false }
        }
    }
    # Not where we expected: ask Exchange which built-in roles hold it [GMR].
    $query = @{ Cmdlet = $Cmdlet; ErrorAction = 'SilentlyContinue' }
    if ($Parameters.Count -gt 0) { $query['CmdletParameters'] = $Parameters }
    $found = @(Get-ManagementRole @query | Where-Object { $_.IsRootRole -and -not $_.IsEndUserRole } | ForEach-Object { "$($_.Name)" })
    if ($found.Count -eq 0) { return $null }
    $pick = $null
    if ($Tier -eq 'Read') { $pick = $found | Where-Object { $_ -like 'View-Only*' } | Select-Object -First 1 }
    if (-not $pick) { $pick = $found | Sort-Object | Select-Object -First 1 }
    Write-Warning ("{0}: not found with its parameters in {1}; using built-in role '{2}' (candidates: {3}). Review." -f `
            $Cmdlet, (@($ParentCandidates[$Cmdlet]) -join ' / '), $pick, ($found -join ', '))
    return [pscustomobject]@{ Parent = $pick; Discovered = $true }
}

function Set-ChildRole([string] $Name, [string] $Parent, [hashtable] $Cmdlets) {
    $role = Get-ManagementRole -Identity $Name -ErrorAction SilentlyContinue
    if ($role) {
        $current = "$($role.Parent)"
        if ($current -and $current -ne $Parent -and $current -notlike "*$Parent") {
            throw "Role '$Name' exists with parent '$current', not '$Parent'. Run Remove-NdrBotRoles.ps1 first."
        }
    }
    elseif ($PSCmdlet.ShouldProcess($Name, "New-ManagementRole -Parent '$Parent'")) {
        New-ManagementRole -Name $Name -Parent $Parent | Out-Null
    }
    else {
        # -WhatIf: the role does not exist yet, so there is nothing to trim.
        Write-Host ("  would keep in '{0}': {1}" -f $Name, (($Cmdlets.Keys | Sort-Object) -join ', '))
        return
    }

    # Remove every entry that is not one of the bot's cmdlets [RRE]. The entries are
    # collected first: piping a streaming Exchange cmdlet into a loop that calls
    # another one fails in the Exchange Management Shell ("Pipelines cannot be
    # executed concurrently"). A child of View-Only Configuration starts with
    # hundreds of entries: this takes a few minutes the first time.
    $keep = @($Cmdlets.Keys)
    $extra = @(Get-ManagementRoleEntry -Identity "$Name\*" | Where-Object { $keep -notcontains "$($_.Name)" })
    foreach ($e in $extra) {
        $id = "$Name\$($e.Name)"
        if ($PSCmdlet.ShouldProcess($id, 'Remove-ManagementRoleEntry')) {
            Remove-ManagementRoleEntry -Identity $id -Confirm:$false
        }
    }

    # Restrict each kept entry to the bot's parameters (+ common ones) [SMRE][CRE].
    foreach ($cmdlet in $keep) {
        $want = @($Cmdlets[$cmdlet])
        $id = "$Name\$cmdlet"
        $have = Get-EntryParameters $Name $cmdlet
        if ($null -eq $have) { throw "$id is missing although its parent '$Parent' holds $cmdlet." }
        $remove = @($have | Where-Object { $want -notcontains $_ -and $CommonParameters -notcontains $_ })
        if ($remove.Count -gt 0 -and $PSCmdlet.ShouldProcess($id, "Set-ManagementRoleEntry -RemoveParameter $($remove -join ',')")) {
            Set-ManagementRoleEntry -Identity $id -Parameters $remove -RemoveParameter -Confirm:$false
        }
        $missing = @($want | Where-Object { $have -notcontains $_ })
        if ($missing.Count -gt 0 -and $PSCmdlet.ShouldProcess($id, "Set-ManagementRoleEntry -AddParameter $($missing -join ',')")) {
            # Only possible because the parent was chosen to hold them [SMRE].
            Set-ManagementRoleEntry -Identity $id -Parameters $missing -AddParameter -Confirm:$false
        }
    }
}

function Set-RoleGroupRoles([string] $Group, [string] $Description, [string[]] $Roles) {
    $existing = Get-RoleGroup -Identity $Group -ErrorAction SilentlyContinue
    if (-not $existing) {
        if ($PSCmdlet.ShouldProcess($Group, "New-RoleGroup -Roles $($Roles -join ', ')")) {
            New-RoleGroup -Name $Group -Roles $Roles -Description $Description | Out-Null
        }
    }
    else {
        foreach ($r in $Roles) {
            $assigned = @(Get-ManagementRoleAssignment -Role $r -RoleAssignee $Group -Delegating $false -ErrorAction SilentlyContinue)
            if ($assigned.Count -eq 0 -and $PSCmdlet.ShouldProcess("$Group <- $r", 'New-ManagementRoleAssignment')) {
                New-ManagementRoleAssignment -SecurityGroup $Group -Role $r | Out-Null
            }
        }
    }
    foreach ($m in $Member) {
        if ($PSCmdlet.ShouldProcess("$Group <- $m", 'Add-RoleGroupMember')) {
            try {
                Add-RoleGroupMember -Identity $Group -Member $m -BypassSecurityGroupManagerCheck -Confirm:$false
            }
            catch {
                if ("$_" -notmatch 'already a member') { throw }
            }
        }
    }
}

function Remove-StaleRoles([string] $Tier, [string[]] $Wanted) {
    $stale = @(Get-ManagementRole -Identity "$Prefix $Tier - *" -ErrorAction SilentlyContinue |
        Where-Object { -not $_.IsRootRole -and $Wanted -notcontains "$($_.Name)" })
    foreach ($role in $stale) {
        $name = "$($role.Name)"
        if ($PSCmdlet.ShouldProcess($name, 'Remove stale NdrBot role and its assignments')) {
            foreach ($a in @(Get-ManagementRoleAssignment -Role $name -ErrorAction SilentlyContinue)) {
                Remove-ManagementRoleAssignment -Identity "$($a.Name)" -Confirm:$false
            }
            Remove-ManagementRole -Identity $name -Confirm:$false
        }
    }
}

$report = New-Object System.Collections.Generic.List[object]
foreach ($tier in $Tiers.Keys) {
    if ($tier -eq 'Relief' -and $SkipRelief) { Write-Host "Skipping tier Relief (-SkipRelief)."; continue }
    if ($tier -eq 'Admin' -and -not $IncludeAdmin) { Write-Host 'Skipping tier Admin (pass -IncludeAdmin to create it).'; continue }
    $cmdlets = $data[$tier]
    if (-not $cmdlets -or $cmdlets.Count -eq 0) { continue }
    Write-Host "Tier $tier -> role group '$($Tiers[$tier].Group)'"

    # Group the tier's cmdlets by parent role.
    $byParent = @{}
    foreach ($cmdlet in ($cmdlets.Keys | Sort-Object)) {
        $params = [string[]]@($cmdlets[$cmdlet])
        $resolved = Resolve-ParentRole $cmdlet $params $tier
        if (-not $resolved) {
            throw "No built-in role holds $cmdlet with parameters $($params -join ', '). Is this an Exchange 2016/2019/SE organisation, and are you in Organization Management?"
        }
        if (-not $byParent.ContainsKey($resolved.Parent)) { $byParent[$resolved.Parent] = @{} }
        $byParent[$resolved.Parent][$cmdlet] = $params
        $report.Add([pscustomobject]@{
                Tier = $tier; Cmdlet = $cmdlet; Parent = $resolved.Parent
                ChildRole = "$Prefix $tier - $($resolved.Parent)"; Parameters = ($params -join ','); Discovered = $resolved.Discovered
            })
    }

    $roleNames = @()
    foreach ($parent in ($byParent.Keys | Sort-Object)) {
        $child = "$Prefix $tier - $parent"
        $roleNames += $child
        Set-ChildRole -Name $child -Parent $parent -Cmdlets $byParent[$parent]
    }
    Remove-StaleRoles $tier $roleNames
    Set-RoleGroupRoles -Group $Tiers[$tier].Group -Description $Tiers[$tier].Description -Roles $roleNames
}

$report | Sort-Object Tier, ChildRole, Cmdlet | Format-Table -AutoSize Tier, Cmdlet, Parent, Parameters, Discovered | Out-String -Width 200 | Write-Host
Write-Host @"
Check what the bot's account may run (after AD replication):
  Get-ManagementRoleAssignment -RoleAssignee '<DOMAIN>\svc-ndrbot' -Delegating `$false | Format-Table Role, RoleAssigneeName
  Get-ManagementRoleEntry '$Prefix Read - *\*' | Format-Table Role, Name, Parameters -Wrap
A running bot only sees new permissions in NEW remote PowerShell sessions: restart it
(or let its runspaces expire) after changing roles.
"@
