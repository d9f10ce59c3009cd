<#
.SYNOPSIS
    Undoes New-NdrBotRoles.ps1: removes the NdrBot role groups and the NdrBot child
    management roles (with every assignment of them).

.DESCRIPTION
    Run in the Exchange Management Shell as a member of Organization Management.
    Removes only what New-NdrBotRoles.ps1 creates:
      role groups  "<Prefix> Readers", "<Prefix> Relievers", "<Prefix> Admin Reliefs"
      roles        "<Prefix> Read - *", "<Prefix> Relief - *", "<Prefix> Admin - *"
                   that are custom (not root) roles.
    Built-in roles are never touched (Exchange refuses to remove them anyway:
    "Remove-ManagementRole", learn.microsoft.com). Role assignments go first, since a
    role with assignments cannot be removed. -WhatIf shows what would go.
    The bot's AD account itself is left alone.
    Not verified against a live server.

.EXAMPLE
    .\Remove-NdrBotRoles.ps1 -WhatIf
    .\Remove-NdrBotRoles.ps1
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'High')]
param(
    [ValidatePattern('^[A-Za-z][A-Za-z0-9]{0,15}$')]
    [string] $Prefix = 'NdrBot'
)

$ErrorActionPreference = 'Stop'

if (-not (Get-Command Remove-ManagementRole -ErrorAction SilentlyContinue)) {
    throw 'Remove-ManagementRole is not available: run this in the Exchange Management Shell as a member of Organization Management.'
}

foreach ($group in "$Prefix Readers", "$Prefix Relievers", "$Prefix Admin Reliefs") {
    if (Get-RoleGroup -Identity $group -ErrorAction SilentlyContinue) {
        if ($PSCmdlet.ShouldProcess($group, 'Remove-RoleGroup')) {
            Remove-RoleGroup -Identity $group -BypassSecurityGroupManagerCheck -Confirm:$false
        }
    }
}

foreach ($tier in 'Read', 'Relief', 'Admin') {
    # Collected first: Exchange cmdlets cannot run while another one still streams.
    $roles = @(Get-ManagementRole -Identity "$Prefix $tier - *" -ErrorAction SilentlyContinue |
        Where-Object { -not $_.IsRootRole })
    foreach ($role in $roles) {
        $name = "$($role.Name)"
        if (-not $PSCmdlet.ShouldProcess($name, 'Remove role assignments and Remove-ManagementRole')) { continue }
        foreach ($a in @(Get-ManagementRoleAssignment -Role $name -ErrorAction SilentlyContinue)) {
            Remove-ManagementRoleAssignment -Identity "$($a.Name)" -Confirm:$false
        }
        Remove-ManagementRole -Identity $name -Confirm:$false
    }
}

Write-Host "NdrBot RBAC objects removed. Sessions the bot already has keep their permissions until they close."
